//go:build tools

// Package tools pins the NATS server (with JetStream) that local runs and
// tests use. Build it with: go build -o <out> github.com/nats-io/nats-server/v2
package tools

import _ "github.com/nats-io/nats-server/v2"
