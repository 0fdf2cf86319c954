package testbed

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestStartRegistry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []RegistryOption
	}{
		{name: "plain"},
		{name: "tls", opts: []RegistryOption{WithTLS()}},
		{name: "htpasswd", opts: []RegistryOption{WithHtpasswd("alice", "s3cret")}},
		{name: "htpasswd+tls", opts: []RegistryOption{WithHtpasswd("bob", "pa55"), WithTLS()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := StartRegistry(t, tc.opts...)
			if !strings.HasPrefix(r.Host, "127.0.0.1:") {
				t.Fatalf("Host = %q, want 127.0.0.1:PORT", r.Host)
			}
			tlsOn := r.CertPool != nil
			if tlsOn != (r.CAFile != "") {
				t.Fatalf("CertPool set = %v but CAFile = %q", tlsOn, r.CAFile)
			}
			if tlsOn {
				if _, err := os.Stat(r.CAFile); err != nil {
					t.Fatalf("CAFile: %v", err)
				}
				// Without the CA, TLS verification must fail.
				if resp, err := http.Get(r.URL() + "/v2/"); err == nil {
					resp.Body.Close()
					t.Fatalf("GET with system roots succeeded; want a certificate error")
				}
			}

			var nameOpts []name.Option
			if !tlsOn {
				nameOpts = append(nameOpts, name.Insecure)
			}
			ref, err := name.ParseReference(r.Ref("testbed/img:1"), nameOpts...)
			if err != nil {
				t.Fatal(err)
			}
			img, err := random.Image(256, 1)
			if err != nil {
				t.Fatal(err)
			}
			remoteOpts := []remote.Option{remote.WithTransport(r.Transport())}
			if r.Username != "" {
				// Anonymous push must be refused.
				if err := remote.Write(ref, img, remoteOpts...); err == nil {
					t.Fatalf("anonymous push succeeded on a registry with htpasswd")
				}
				remoteOpts = append(remoteOpts, remote.WithAuth(&authn.Basic{Username: r.Username, Password: r.Password}))
			}
			if err := remote.Write(ref, img, remoteOpts...); err != nil {
				t.Fatalf("pushing: %v", err)
			}
			want, _ := img.Digest()
			desc, err := remote.Head(ref, remoteOpts...)
			if err != nil {
				t.Fatalf("head: %v", err)
			}
			if desc.Digest != want {
				t.Fatalf("digest = %s, want %s", desc.Digest, want)
			}
		})
	}
}

func TestRequireServiceSkipsOutsideCI(t *testing.T) {
	if os.Getenv("CI") == "true" {
		t.Skip("checks the non-CI behaviour")
	}
	t.Parallel()
	done := make(chan bool, 1)
	// RequireService must stop the calling test; run it in a subtest that
	// should be skipped.
	ok := t.Run("inner", func(t *testing.T) {
		defer func() { done <- t.Skipped() }()
		RequireService(t, "nothing")
		t.Error("RequireService returned")
	})
	if !ok || !<-done {
		t.Fatalf("RequireService did not skip outside CI")
	}
}
