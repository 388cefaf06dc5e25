package tlsprobe_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"

	"github.com/gopatrol/gopatrol/bpf/tlsprobe"
)

// ExampleParseClientHello reads the first record a real crypto/tls client
// writes, as the socket program captures it: the server name and ALPN.
func ExampleParseClientHello() {
	client, server := net.Pipe()
	go func() {
		c := tls.Client(client, &tls.Config{ServerName: "proxy.example.test", NextProtos: []string{"h2"}})
		c.Handshake() // fails when the server side closes
		client.Close()
	}()
	// One record: a 5-byte header whose last two bytes are the length.
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(server, hdr); err != nil {
		fmt.Println(err)
		return
	}
	rec := make([]byte, 5+(int(hdr[3])<<8|int(hdr[4])))
	copy(rec, hdr)
	_, err := io.ReadFull(server, rec[5:])
	server.Close()
	if err != nil {
		fmt.Println(err)
		return
	}
	ch, err := tlsprobe.ParseClientHello(rec)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ch.ServerName, ch.ALPN)
	// Output: proxy.example.test [h2]
}
