package nbdserver

import "errors"

// The connections of an export: found by identity, for the daemon's
// counts and for Disconnect (remove --force), which must miss none,
// including one whose GO is opening the export as it runs.

// errDisconnected ends the handshake of a connection whose export a
// Disconnect ended while the connection was opening it.
var errDisconnected = errors.New("nbdserver: the export was disconnected while it was being opened")

// connsOf lists the connections serving exp (compared by identity, so a
// renamed export is still found).
func (s *Server) connsOf(exp Export) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connsOfLocked(exp, false)
}

// connsOfLocked is connsOf with mu held. With disconnecting, it also
// tells every connection opening an export that exp is being
// disconnected (see publish).
func (s *Server) connsOfLocked(exp Export, disconnecting bool) []*conn {
	var out []*conn
	for c := range s.conns {
		if e := c.export(); e != nil && e == exp {
			out = append(out, c)
		} else if disconnecting && c.opening {
			c.dropped = append(c.dropped, exp)
		}
	}
	return out
}

// Connections counts the open connections serving exp.
func (s *Server) Connections(exp Export) int { return len(s.connsOf(exp)) }

// InFlight counts the requests being worked on for exp.
func (s *Server) InFlight(exp Export) int64 {
	var n int64
	for _, c := range s.connsOf(exp) {
		n += c.inflight.Load()
	}
	return n
}

// InFlightByExport counts the requests being worked on, by export, in
// one pass over the connections: a scrape of many devices asks once,
// where InFlight per device walked every connection for each. Exports
// are keys, so they must be comparable (as InFlight's identity needs).
func (s *Server) InFlightByExport() map[Export]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[Export]int64)
	for c := range s.conns {
		if e := c.export(); e != nil {
			out[e] += c.inflight.Load()
		}
	}
	return out
}

// Disconnect forcibly ends every connection serving exp: their in-flight
// requests are cancelled (any still running finish unseen) and later
// requests are never read. It returns how many it ended, once all of them
// have finished.
//
// A connection that is opening an export as Disconnect runs (its GO or
// EXPORT_NAME between beginOpen and publish) is not waited for, as its
// Exports.Open may wait on the caller, nor counted: it is told, and if
// what it opens is exp it ends at once, without serving a request (see
// publish).
func (s *Server) Disconnect(exp Export) int {
	victims := s.disconnectOf(exp)
	for _, c := range victims {
		c.kill()
	}
	for _, c := range victims {
		<-c.done
	}
	return len(victims)
}

// disconnectOf is connsOf for Disconnect: under the same hold of mu it
// also tells every connection opening an export that exp is being
// disconnected.
func (s *Server) disconnectOf(exp Export) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connsOfLocked(exp, true)
}

// beginOpen marks c as opening an export, before it calls Exports.Open:
// from here until publish, a Disconnect that cannot find c by its export
// tells it instead (disconnectOf).
func (s *Server) beginOpen(c *conn) {
	s.mu.Lock()
	c.opening, c.dropped = true, nil
	s.mu.Unlock()
}

// publish records exp, named name, as what c serves, for connsOf; exp is
// nil when the open failed. It reports false when a Disconnect of exp ran
// since beginOpen: c must then end without serving, as if Disconnect had
// found it.
//
// Either Disconnect finds c or c finds the Disconnect, with nothing in
// between: both look under mu, publish after Exports.Open has returned
// exp. A Disconnect that takes mu before publish finds c opening (it
// became so before Open was called) and leaves exp in c.dropped; one that
// takes mu after finds c by its export. A Disconnect that runs between
// beginOpen and the call to Exports.Open ends c too, should c then be
// handed exp: the safe side (the daemon takes a device out of its
// catalogue before it disconnects it, so it never hands one out then).
func (s *Server) publish(c *conn, exp Export, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	dropped := c.dropped
	c.opening, c.dropped = false, nil
	if exp == nil {
		return true
	}
	for _, d := range dropped {
		if d == exp {
			return false
		}
	}
	c.name.Store(&name)
	c.expRef.Store(&exp)
	return true
}
