// nats-jspub: the peer faultline's generator is compared with on NATS JetStream
// (`faultline bench peers`): what a user would write with the official Go client to push a
// stream as fast as it takes acknowledged writes. It publishes -n messages of -size bytes to
// -subject with JetStream's asynchronous publish (at most -pending unacknowledged), waits for
// every acknowledgement, and prints one JSON line: messages, acknowledged, failed, seconds.
//
// Built offline from Debian's Go and Debian's nats.go sources by scripts/install-peers.sh.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
)

func main() {
	url := flag.String("url", "nats://127.0.0.1:4222", "server URL")
	subject := flag.String("subject", "orders", "subject the stream captures")
	n := flag.Int("n", 100000, "messages to publish")
	size := flag.Int("size", 128, "payload bytes")
	pending := flag.Int("pending", 4096, "most unacknowledged publishes")
	flag.Parse()

	nc, err := nats.Connect(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(3)
	}
	defer nc.Close()
	js, err := nc.JetStream(nats.PublishAsyncMaxPending(*pending))
	if err != nil {
		fmt.Fprintln(os.Stderr, "jetstream:", err)
		os.Exit(3)
	}
	payload := make([]byte, *size)
	futures := make([]nats.PubAckFuture, 0, *n)
	start := time.Now()
	failed := 0
	for i := 0; i < *n; i++ {
		f, err := js.PublishAsync(*subject, payload)
		if err != nil {
			failed++
			continue
		}
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
	}
	acked := 0
	for _, f := range futures {
		select {
		case <-f.Ok():
			acked++
		case <-f.Err():
			failed++
		default:
			failed++
		}
	}
	secs := time.Since(start).Seconds()
	out, _ := json.Marshal(map[string]interface{}{
		"messages": *n, "acknowledged": acked, "failed": failed, "seconds": secs,
	})
	fmt.Println(string(out))
}
