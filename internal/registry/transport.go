package registry

import (
	"crypto/tls"
	"net"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// hostTransport sends requests for the insecure hosts through a transport
// that skips TLS verification, and every other request through the verifying
// one.
type hostTransport struct {
	secure, insecure http.RoundTripper
	hosts            []string
}

// RoundTrip implements http.RoundTripper.
func (t *hostTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if matchHost(t.hosts, req.URL.Host) {
		return t.insecure.RoundTrip(req)
	}
	return t.secure.RoundTrip(req)
}

// matchHost reports whether host (HOST[:PORT]) is one of hosts; an entry
// without a port matches the host on any port.
func matchHost(hosts []string, host string) bool {
	hostname := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostname = h
	}
	for _, h := range hosts {
		if h == host {
			return true
		}
		if _, _, err := net.SplitHostPort(h); err != nil && h == hostname {
			return true
		}
	}
	return false
}

// newTransport builds the client's transport: the given one (default
// remote.DefaultTransport), plus an unverified copy for insecure hosts.
func newTransport(base http.RoundTripper, insecure []string) http.RoundTripper {
	if base == nil {
		base = remote.DefaultTransport
	}
	if len(insecure) == 0 {
		return base
	}
	var skip http.RoundTripper
	if tr, ok := base.(*http.Transport); ok {
		c := tr.Clone()
		if c.TLSClientConfig == nil {
			c.TLSClientConfig = &tls.Config{}
		}
		c.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // only for hosts the user named insecure
		skip = c
	} else {
		c := remote.DefaultTransport.(*http.Transport).Clone()
		c.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only for hosts the user named insecure
		skip = c
	}
	return &hostTransport{secure: base, insecure: skip, hosts: insecure}
}

// nameOptions returns the parse options for a reference on registry reg:
// name.Insecure when the user named it insecure.
func (c *Client) nameOptions(reg string) []name.Option {
	if matchHost(c.opts.insecure, reg) {
		return []name.Option{name.Insecure}
	}
	return nil
}

// parseReference parses s, applying name.Insecure for insecure registries.
func (c *Client) parseReference(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, err
	}
	if opts := c.nameOptions(ref.Context().RegistryStr()); len(opts) > 0 {
		return name.ParseReference(s, opts...)
	}
	return ref, nil
}

// parseTag parses s as a tag (":latest" when none is given), applying
// name.Insecure for insecure registries.
func (c *Client) parseTag(s string) (name.Tag, error) {
	tag, err := name.NewTag(s)
	if err != nil {
		return name.Tag{}, err
	}
	if opts := c.nameOptions(tag.RegistryStr()); len(opts) > 0 {
		return name.NewTag(s, opts...)
	}
	return tag, nil
}
