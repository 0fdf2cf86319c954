package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/intesys/ship-action/action"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cfg, err := action.Load(os.Args[1:], os.LookupEnv)
	if err == nil {
		err = action.Run(ctx, cfg)
	}
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "ship: %v\n", err)
		os.Exit(action.ExitCode(err))
	}
}
