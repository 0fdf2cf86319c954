package build

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sys/unix"

	"github.com/intesys/ship-action/internal/dockerfile"
)

// dispatch runs one instruction. It returns the compressed size of the
// layer it added, or -1 when it added none.
func (st *stageState) dispatch(ctx context.Context, cmd dockerfile.Command) (int64, error) {
	if c, ok := cmd.Command.(*instructions.RunCommand); ok {
		return st.run(ctx, cmd, c)
	}
	if err := st.b.df.Expand(cmd, st.env); err != nil {
		return -1, err
	}
	cfg := &st.cfg.Config
	switch c := cmd.Command.(type) {
	case *instructions.EnvCommand:
		msg := "ENV"
		for _, kv := range c.Env {
			msg += " " + kv.String()
			st.env.Set(kv.Key, kv.Value)
			cfg.Env = addEnv(cfg.Env, kv.Key, kv.Value)
		}
		st.commit(msg, false)
	case *instructions.ArgCommand:
		var parts []string
		for _, a := range c.Args {
			v, err := st.b.df.StageArg(a, st.b.req.BuildArgs, st.b.globals, st.env)
			if err != nil {
				return -1, err
			}
			st.args = append(st.args, buildArg{key: a.Key, value: v})
			s := a.Key
			if v != nil {
				st.env.Set(a.Key, *v)
				s += "=" + *v
			}
			parts = append(parts, s)
		}
		st.commit("ARG "+strings.Join(parts, " "), false)
	case *instructions.LabelCommand:
		msg := "LABEL"
		if cfg.Labels == nil {
			cfg.Labels = make(map[string]string, len(c.Labels))
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
			msg += " " + kv.String()
		}
		st.commit(msg, false)
	case *instructions.MaintainerCommand:
		st.cfg.Author = c.Maintainer
		st.commit("MAINTAINER "+c.Maintainer, false)
	case *instructions.UserCommand:
		cfg.User = c.User
		st.commit("USER "+c.User, false)
	case *instructions.ExposeCommand:
		words, err := st.b.df.ExposePorts(c, st.env)
		if err != nil {
			return -1, err
		}
		var ports []string
		for _, w := range words {
			ps, err := parsePort(w)
			if err != nil {
				return -1, err
			}
			ports = append(ports, ps...)
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range ports {
			cfg.ExposedPorts[p] = struct{}{}
		}
		st.commit(fmt.Sprintf("EXPOSE %v", ports), false)
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v == "" {
				return -1, errors.New("VOLUME specified can not be an empty string")
			}
			cfg.Volumes[v] = struct{}{}
		}
		st.commit(fmt.Sprintf("VOLUME %v", c.Volumes), false)
	case *instructions.StopSignalCommand:
		if err := checkSignal(c.Signal); err != nil {
			return -1, err
		}
		cfg.StopSignal = c.Signal
		st.commit("STOPSIGNAL "+c.Signal, false)
	case *instructions.ShellCommand:
		cfg.Shell = append([]string(nil), c.Shell...)
		st.commit(fmt.Sprintf("SHELL %v", c.Shell), false)
	case *instructions.CmdCommand:
		args := c.CmdLine
		if c.PrependShell {
			args = st.withShell(args)
		}
		cfg.Cmd = append([]string(nil), args...)
		cfg.ArgsEscaped = true
		st.cmdSet = true
		st.commit(fmt.Sprintf("CMD %q", args), false)
	case *instructions.EntrypointCommand:
		args := c.CmdLine
		if c.PrependShell {
			args = st.withShell(args)
		}
		cfg.Entrypoint = append([]string(nil), args...)
		if !st.cmdSet {
			cfg.Cmd = nil
		}
		st.commit(fmt.Sprintf("ENTRYPOINT %q", args), false)
	case *instructions.HealthCheckCommand:
		h := c.Health
		cfg.Healthcheck = &v1.HealthConfig{
			Test:        append([]string(nil), h.Test...),
			Interval:    h.Interval,
			Timeout:     h.Timeout,
			StartPeriod: h.StartPeriod,
			Retries:     h.Retries,
		}
		// BuildKit prints its HealthcheckConfig with %+v.
		st.commit(fmt.Sprintf("HEALTHCHECK {Test:%v Interval:%v Timeout:%v StartPeriod:%v StartInterval:%v Retries:%v}",
			h.Test, h.Interval, h.Timeout, h.StartPeriod, h.StartInterval, h.Retries), false)
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	case *instructions.WorkdirCommand:
		return st.workdir(ctx, c)
	case *instructions.CopyCommand:
		return st.copy(ctx, cmd, copySpec{
			params: c.SourcesAndDest, from: c.From, chown: c.Chown, chmod: c.Chmod,
			link: c.Link, excludes: c.ExcludePatterns, parents: c.Parents,
		})
	case *instructions.AddCommand:
		if c.KeepGitDir != nil || c.Unpack != nil {
			return -1, errors.New("ADD --keep-git-dir and --unpack are not supported yet")
		}
		return st.copy(ctx, cmd, copySpec{
			params: c.SourcesAndDest, chown: c.Chown, chmod: c.Chmod, link: c.Link,
			excludes: c.ExcludePatterns, checksum: c.Checksum, add: true,
		})
	default:
		return -1, fmt.Errorf("%s is not supported", strings.ToUpper(cmd.Name()))
	}
	return -1, nil
}

// withShell wraps a shell-form command line with SHELL (default /bin/sh -c).
func (st *stageState) withShell(args []string) []string {
	shell := append([]string(nil), st.cfg.Config.Shell...)
	if len(shell) == 0 {
		shell = []string{"/bin/sh", "-c"}
		if st.platform.OS == "windows" {
			shell = []string{"cmd", "/S", "/C"}
		}
	}
	return append(shell, strings.Join(args, " "))
}

// addEnv sets k=v in env, replacing an existing k in place.
func addEnv(env []string, k, v string) []string {
	for i, kv := range env {
		key, _, _ := strings.Cut(kv, "=")
		if key == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// normalizeWorkdir resolves wd against the current working directory.
func normalizeWorkdir(current, wd string) string {
	if !path.IsAbs(wd) {
		if current == "" {
			current = "/"
		}
		wd = path.Join(current, wd)
	}
	return path.Clean(wd)
}

// checkSignal validates a STOPSIGNAL value as BuildKit (moby/sys/signal) does.
func checkSignal(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n == 0 {
			return fmt.Errorf("Invalid signal: %s", s) //nolint:staticcheck // BuildKit's message
		}
		return nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if unix.SignalNum("SIG"+name) != 0 {
		return nil
	}
	if rest, ok := strings.CutPrefix(name, "RTMIN"); ok && (rest == "" || validRT(rest, '+')) {
		return nil
	}
	if rest, ok := strings.CutPrefix(name, "RTMAX"); ok && (rest == "" || validRT(rest, '-')) {
		return nil
	}
	return fmt.Errorf("Invalid signal: %s", s) //nolint:staticcheck // BuildKit's message
}

func validRT(rest string, sign byte) bool {
	if rest[0] != sign {
		return false
	}
	n, err := strconv.Atoi(rest[1:])
	return err == nil && n >= 1 && n <= 14
}

// parsePort turns an EXPOSE argument ([ip:][hostPort:]port[-end][/proto])
// into "port/proto" entries, as BuildKit's convert_expose.go does.
func parsePort(raw string) ([]string, error) {
	parts := strings.Split(raw, ":")
	var ip, hostPort, containerPort string
	switch n := len(parts); n {
	case 1:
		containerPort = parts[0]
	case 2:
		hostPort, containerPort = parts[0], parts[1]
	default:
		ip, hostPort, containerPort = strings.Join(parts[:n-2], ":"), parts[n-2], parts[n-1]
	}
	port, proto, _ := strings.Cut(containerPort, "/")
	if port == "" {
		return nil, fmt.Errorf("invalid port: %q: no port specified", raw)
	}
	switch strings.ToLower(proto) {
	case "":
		proto = "tcp"
	case "tcp", "udp", "sctp":
	default:
		return nil, fmt.Errorf("invalid port: %q: invalid proto: %s", raw, proto)
	}
	if ip != "" && ip[0] == '[' {
		h, _, err := net.SplitHostPort(ip + ":")
		if err != nil {
			return nil, fmt.Errorf("invalid IP address %v: %w", ip, err)
		}
		ip = h
	}
	if ip != "" && net.ParseIP(ip) == nil {
		return nil, errors.New("invalid IP address: " + ip)
	}
	start, end, err := portRange(port)
	if err != nil {
		return nil, errors.New("invalid containerPort: " + port)
	}
	if hostPort != "" {
		hs, he, err := portRange(hostPort)
		if err != nil {
			return nil, errors.New("invalid hostPort: " + hostPort)
		}
		if end-start != he-hs && end != start {
			return nil, fmt.Errorf("invalid ranges specified for container and host Ports: %s and %s", port, hostPort)
		}
	}
	out := make([]string, 0, end-start+1)
	for p := start; p <= end; p++ {
		out = append(out, strconv.Itoa(p)+"/"+strings.ToLower(proto))
	}
	return out, nil
}

func portRange(s string) (int, int, error) {
	if s == "" {
		return 0, 0, errors.New("empty string specified for ports")
	}
	a, b, ok := strings.Cut(s, "-")
	start, err := portNumber(a)
	if err != nil {
		return 0, 0, err
	}
	if !ok || a == b {
		return start, start, nil
	}
	end, err := portNumber(b)
	if err != nil {
		return 0, 0, err
	}
	if end < start {
		return 0, 0, errors.New("invalid port range: " + s)
	}
	return start, end, nil
}

func portNumber(s string) (int, error) {
	n, err := strconv.ParseInt(s, 10, 0)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > 65535 {
		return 0, errors.New("value out of range (0–65535)")
	}
	return int(n), nil
}
