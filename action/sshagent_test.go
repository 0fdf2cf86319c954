package action

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func writeKey(t *testing.T, passphrase string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p, sp
}

func TestSSHAgents(t *testing.T) {
	t.Parallel()
	key, pub := writeKey(t, "")
	locked, _ := writeKey(t, "secret phrase")
	sockDir := t.TempDir()
	notKey := filepath.Join(sockDir, "notes.txt")
	if err := os.WriteFile(notKey, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hostSock := filepath.Join(sockDir, "agent.sock")
	l, err := net.Listen("unix", hostSock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	env := func(k string) string {
		if k == "SSH_AUTH_SOCK" {
			return hostSock
		}
		return ""
	}
	a, err := startSSHAgents([]string{"default", "deploy=" + key, "other=" + hostSock}, env, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if a.sockets["default"] != hostSock || a.sockets["other"] != hostSock || a.sockets["deploy"] == "" {
		t.Fatalf("sockets %v", a.sockets)
	}
	// The key file is served by an agent that holds it.
	c, err := net.Dial("unix", a.sockets["deploy"])
	if err != nil {
		t.Fatal(err)
	}
	keys, err := agent.NewClient(c).List()
	c.Close()
	if err != nil || len(keys) != 1 || string(keys[0].Marshal()) != string(pub.Marshal()) {
		t.Fatalf("agent keys %v, %v", keys, err)
	}

	for _, tt := range []struct {
		name  string
		items []string
		env   func(string) string
		want  string
	}{
		{"no agent", []string{"default"}, func(string) string { return "" }, "SSH_AUTH_SOCK is not set"},
		{"passphrase", []string{"x=" + locked}, env, "protected by a passphrase"},
		{"missing file", []string{"x=/nonexistent/key"}, env, "no such file"},
		{"not a key", []string{"x=" + notKey}, env, "not a private key"},
		{"twice", []string{"a", "a"}, env, "given twice"},
		{"empty id", []string{"=x"}, env, "want default, ID or ID=PATH"},
	} {
		_, err := startSSHAgents(tt.items, tt.env, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}
