package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/intesys/ship-action/action"
	"github.com/intesys/ship-action/internal/scan"
)

func main() {
	// Trivy's init replaces slog's default logger with one that buffers
	// forever; put a plain one back first.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var cfg action.Config
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "scan":
		cfg, err = action.LoadScan(os.Args[2:], os.LookupEnv)
	case len(os.Args) > 1 && os.Args[1] == "merge":
		cfg, err = action.LoadMerge(os.Args[2:], os.LookupEnv)
	default:
		cfg, err = action.Load(os.Args[1:], os.LookupEnv)
	}
	if err == nil {
		err = action.Run(ctx, cfg)
	}
	stop()
	if rmErr := scan.RemoveTempDir(); rmErr != nil {
		fmt.Fprintf(os.Stderr, "ship: warning: removing Trivy's temporary directory: %v\n", rmErr)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ship: %v\n", err)
		os.Exit(action.ExitCode(err))
	}
}
