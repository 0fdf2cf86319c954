package build

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh/agent"

	"github.com/intesys/ship-action/internal/sandbox"
)

// agentClient is a static program that asks the SSH agent at
// $SSH_AUTH_SOCK for its identities and prints how many it has.
const agentClient = `package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	c, err := net.Dial("unix", os.Getenv("SSH_AUTH_SOCK"))
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(1)
	}
	// SSH2_AGENTC_REQUEST_IDENTITIES
	if _, err := c.Write([]byte{0, 0, 0, 1, 11}); err != nil {
		fmt.Println("write:", err)
		os.Exit(1)
	}
	var hdr [9]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil || hdr[4] != 12 {
		fmt.Println("read:", err, hdr)
		os.Exit(1)
	}
	fmt.Printf("keys=%d\n", binary.BigEndian.Uint32(hdr[5:]))
}
`

// buildAgentClient compiles agentClient statically into dir/sshclient.
func buildAgentClient(t *testing.T, dir string) {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(agentClient), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module sshclient\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "sshclient"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOEXPERIMENT=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the agent client: %v\n%s", err, out)
	}
}

// startAgent serves an SSH agent holding one key on a unix socket.
func startAgent(t *testing.T) string {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _ = agent.ServeAgent(kr, c) }()
		}
	}()
	return sock
}

// TestRunSSHMount: RUN --mount=type=ssh reaches the agent given for its id
// through a socket at /run/buildkit/ssh_agent.0 (SSH_AUTH_SOCK), in every
// sandbox mode, and leaves nothing in the layer.
func TestRunSSHMount(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("go is needed to build the agent client: %v", err)
	}
	ctxDir := t.TempDir()
	buildAgentClient(t, ctxDir)
	client, err := os.ReadFile(filepath.Join(ctxDir, "sshclient"))
	if err != nil {
		t.Fatal(err)
	}
	sock := startAgent(t)
	df := "FROM busybox\nCOPY --chmod=755 sshclient /usr/local/bin/sshclient\n" +
		"RUN --mount=type=ssh sh -c 'echo $SSH_AUTH_SOCK > /sock; sshclient > /keys'\n" +
		"RUN --mount=type=ssh,id=other,target=/tmp/agent,uid=1000,mode=0660 sh -c 'stat -c \"%u %a\" /tmp/agent > /meta; SSH_AUTH_SOCK=/tmp/agent sshclient > /keys2'\n"
	modes := []struct {
		name string
		opts []Option
	}{{"overlay", nil}, {"copy", []Option{WithoutOverlay()}}, {"chroot", []Option{withSandboxMode(sandbox.ModeChroot)}}}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			f := fixture{dockerfile: df, files: map[string]string{"sshclient": string(client)},
				req: func(r *Request) { r.SSH = map[string]string{"default": sock, "other": sock} }}
			res, _, logs, err := runBuild(t, f, mode.opts...)
			if err != nil {
				t.Fatalf("build: %v\nlogs:\n%s", err, logs)
			}
			got := flatten(t, res.Image)
			for p, want := range map[string]string{
				"sock":  "file /run/buildkit/ssh_agent.0 00644 0:0",
				"keys":  "file keys=1 00644 0:0",
				"keys2": "file keys=1 00644 0:0",
				"meta":  "file 1000 660 00644 0:0",
			} {
				if got[p] != want {
					t.Errorf("/%s = %q, want %q", p, got[p], want)
				}
			}
			for p := range got {
				if strings.HasPrefix(p, "run/buildkit") || strings.HasPrefix(p, "tmp/agent") || strings.HasPrefix(p, ".ship-sock") {
					t.Errorf("socket path %s is in the image", p)
				}
			}
		})
	}
	t.Run("required id missing", func(t *testing.T) {
		t.Parallel()
		_, _, _, err := runBuild(t, fixture{dockerfile: "FROM busybox\nRUN --mount=type=ssh,id=deploy,required true\n"})
		if err == nil || !strings.Contains(err.Error(), `no SSH agent or key was given for "deploy"`) || !strings.Contains(err.Error(), "Dockerfile:2") {
			t.Errorf("error = %v", err)
		}
	})
}
