package action

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// sshAgents are the SSH agents RUN --mount=type=ssh reaches, by id: the
// sockets the ssh input names, and agents ship serves for key files.
type sshAgents struct {
	sockets map[string]string
	stops   []func()
}

// startSSHAgents resolves the items of the ssh input, as `docker build
// --ssh` takes them: "default" or "ID" is the agent of $SSH_AUTH_SOCK;
// "ID=PATH" is the agent listening at PATH when it is a socket, else the
// private key file PATH (unencrypted; OpenSSH or PEM), served by an agent
// ship starts on a socket in dir for the build. Keys never leave that
// agent: RUN can ask it to sign, not read the key. close stops the agents.
func startSSHAgents(items []string, env func(string) string, dir string) (*sshAgents, error) {
	a := &sshAgents{sockets: map[string]string{}}
	for _, item := range items {
		id, p, hasPath := strings.Cut(strings.TrimSpace(item), "=")
		if id == "" {
			a.close()
			return nil, fmt.Errorf("ssh %q: want default, ID or ID=PATH (an agent socket or a private key file)", item)
		}
		if _, dup := a.sockets[id]; dup {
			a.close()
			return nil, fmt.Errorf("ssh: id %q given twice", id)
		}
		if !hasPath {
			sock := env("SSH_AUTH_SOCK")
			if sock == "" {
				a.close()
				return nil, fmt.Errorf("ssh %s: SSH_AUTH_SOCK is not set (start ssh-agent, or give %s=PATH to a key or an agent socket)", id, id)
			}
			a.sockets[id] = sock
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("ssh %s: %w", id, err)
		}
		if fi.Mode().Type() == fs.ModeSocket {
			a.sockets[id] = p
			continue
		}
		sock, stop, err := serveKey(p, filepath.Join(dir, "ssh-"+fmt.Sprint(len(a.stops))+".sock"))
		if err != nil {
			a.close()
			return nil, fmt.Errorf("ssh %s: %w", id, err)
		}
		a.sockets[id] = sock
		a.stops = append(a.stops, stop)
	}
	return a, nil
}

// close stops the agents ship started.
func (a *sshAgents) close() {
	for _, stop := range a.stops {
		stop()
	}
	a.stops = nil
}

// serveKey serves an agent holding the private key in file keyFile at the
// socket path sock.
func serveKey(keyFile, sock string) (string, func(), error) {
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return "", nil, err
	}
	key, err := ssh.ParseRawPrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return "", nil, fmt.Errorf("%s is protected by a passphrase: load it into an ssh-agent and pass the agent instead", keyFile)
	}
	if err != nil {
		// The parser's error never quotes the key.
		return "", nil, fmt.Errorf("%s is not a private key ship can read: %w", keyFile, err)
	}
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: key, Comment: filepath.Base(keyFile)}); err != nil {
		return "", nil, fmt.Errorf("loading %s: %w", keyFile, err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		return "", nil, fmt.Errorf("starting an SSH agent: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		l.Close()
		return "", nil, fmt.Errorf("starting an SSH agent: %w", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = agent.ServeAgent(kr, c)
			})
		}
	})
	stop := func() {
		l.Close()
		wg.Wait()
		_ = kr.RemoveAll()
	}
	return sock, stop, nil
}
