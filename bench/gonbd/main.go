// Command gonbd serves one file with github.com/pojntfx/go-nbd's own server
// (pkg/server), for the side-by-side benchmark in bench/run.sh. It is not
// part of gdm.
package main

import (
	"flag"
	"log"
	"net"
	"os"

	"github.com/pojntfx/go-nbd/pkg/backend"
	"github.com/pojntfx/go-nbd/pkg/server"
)

func main() {
	file := flag.String("file", "", "file to serve")
	sock := flag.String("socket", "", "UNIX socket to listen on")
	tcp := flag.String("listen", "", "TCP address to listen on instead")
	name := flag.String("name", "bench", "export name")
	flag.Parse()
	f, err := os.OpenFile(*file, os.O_RDWR, 0)
	if err != nil {
		log.Fatal(err)
	}
	network, addr := "unix", *sock
	if *tcp != "" {
		network, addr = "tcp", *tcp
	} else {
		os.Remove(*sock)
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		log.Fatal(err)
	}
	exports := []*server.Export{{Name: *name, Backend: backend.NewFileBackend(f)}}
	opts := &server.Options{MinimumBlockSize: 1, PreferredBlockSize: 4096, MaximumBlockSize: 32 << 20, SupportsMultiConn: true}
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			if err := server.Handle(c, exports, opts); err != nil {
				log.Println("connection:", err)
			}
		}()
	}
}
