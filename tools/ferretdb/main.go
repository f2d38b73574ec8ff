// Command ferretdb runs FerretDB v1 (a MongoDB wire-protocol server) with its
// embedded SQLite backend, for local runs and tests of the Ledgerly platform.
//
// Why our own module: `go install github.com/FerretDB/FerretDB/cmd/ferretdb`
// builds a binary that panics at start because the module zip lacks
// build/version/version.txt. The embeddable package (github.com/FerretDB/FerretDB/ferretdb)
// has no such requirement, always disables telemetry, keeps its state in
// memory (no state dir) and starts no debug HTTP server (no port 8088 clash).
//
// On start it prints one JSON line with the URI it listens on, so callers can
// ask for port 0 and learn the real port without racing for a free one.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on (loopback only)")
	dataDir := flag.String("data-dir", "", "directory for the SQLite databases (required)")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn, error")
	flag.Parse()

	if *dataDir == "" {
		fatal("--data-dir is required")
	}
	host, _, err := net.SplitHostPort(*listenAddr)
	if err != nil {
		fatal(fmt.Sprintf("--listen-addr: %s", err))
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		fatal("--listen-addr must be a loopback IP address, e.g. 127.0.0.1:27017")
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		fatal(fmt.Sprintf("--data-dir: %s", err))
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fatal(fmt.Sprintf("--log-level: %s", err))
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listenAddr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dataDir + "/",
		Logger:    logger,
	})
	if err != nil {
		fatal(err.Error())
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()

	line, _ := json.Marshal(map[string]string{"msg": "FerretDB listening", "uri": f.MongoDBURI()})
	fmt.Println(string(line))

	<-done
}

func fatal(msg string) {
	fmt.Fprintln(os.Stderr, "ferretdb: "+msg)
	os.Exit(2)
}
