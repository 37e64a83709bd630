package nbdserver

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// An export without write-zeroes (dm's device without them) advertises
// neither WRITE_ZEROES nor FAST_ZERO, which means nothing without it, and
// a WRITE_ZEROES sent anyway is refused with EINVAL before it reaches the
// export: the client writes its zeros itself.
func TestNoWriteZeroesExport(t *testing.T) {
	checkUnadvertised(t, func(m *memExport) { m.noZeroes = true }, tfSendWriteZeroes|tfSendFastZero, cmdWriteZeroes)
}

// checkUnadvertised checks that an export set up by without leaves the
// transmission flags advert out (and only those of TRIM and WRITE_ZEROES
// it names), and refuses cmd with EINVAL before it reaches the export.
func checkUnadvertised(t *testing.T, without func(*memExport), advert, cmd uint16) {
	t.Helper()
	for _, off := range []bool{false, true} {
		m := newMem(65536)
		if off {
			without(m)
		}
		_, sock := startServer(t, testExports{"a": m}, nil)
		c := dial(t, sock)
		c.hello(clientFixedNewstyle | clientNoZeroes)
		c.opt(optInfo, infoData("a"))
		flags := binary.BigEndian.Uint16(infoReplies(t, c)[infoExport][8:])
		if off && flags&advert != 0 || !off && flags&advert != advert {
			t.Errorf("export without %#x: %v; transmission flags %#x", advert, off, flags)
		}
		if others := (tfSendTrim | tfSendWriteZeroes) &^ advert; flags&others != others {
			t.Errorf("export without %#x: %v; transmission flags %#x lack others", advert, off, flags)
		}
	}
	m := newMem(65536)
	without(m)
	_, sock := startServer(t, testExports{"a": m}, nil)
	c := dial(t, sock)
	c.connect("a", false)
	c.request(cmdWrite, 0, 1, 0, 512, bytes.Repeat([]byte{7}, 512))
	if e, _ := c.simple(); e != 0 {
		t.Fatalf("write: errno %d", e)
	}
	c.request(cmd, 0, 2, 0, 512, nil)
	if e, _ := c.simple(); e != errInval {
		t.Fatalf("command %d on an export without it: errno %d, want EINVAL", cmd, e)
	}
	m.mu.RLock()
	kept := m.data[0] == 7
	m.mu.RUnlock()
	if !kept {
		t.Fatalf("the refused command %d reached the export", cmd)
	}
}
