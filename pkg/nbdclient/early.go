package nbdclient

// Replies that outrun the writer. A write's payload is sent from its
// caller's slice (writeBatch puts it in the writev as it is), and the
// caller may reuse the slice as soon as the call completes. So a write
// must not complete while the writer may still be reading its payload:
// else a server that answers after reading only the header (hostile, or
// broken) makes WriteAt return, or an asynchronous write's done run,
// while the rest of the payload is still being sent, and whatever the
// caller then puts in the slice goes out as data.
//
// Such a reply is not refused as a protocol error, since the client
// cannot tell it from a correct one: c.written moves once a whole batch
// is written, and after the writev returns, so a correct server (which
// must read the payload to write it, and to find its next request) may
// have read a request and answered it while the writer is still sending
// the batch's later requests, or has not yet stored written. Refusing
// would drop healthy connections under load. Nor may the reader simply
// wait for the writer: the writer may be waiting for room in the socket,
// from a server that waits for the reader to take its replies before it
// reads on (a server that answers one request at a time does).
//
// So the reader waits for the writer only while the writer needs nothing
// from the server (awaitWritten): it is writing, or about to store
// written. That is the common case, and keeps the completion on the
// reader, in its burst (burst.go). Once the writer waits for room in the
// socket (parked), or on a connection whose writer cannot say (TLS, a
// net.Pipe), the reader holds the call back instead (holdBackLocked): it
// stays pending, so that a timeout or a kill fails it as any call in
// flight, and the writer completes it once it is done with the batch
// (takeLateLocked, completeLate). A call the writer has not even taken
// is another matter: no correct server can answer a request it has not
// begun to receive, and that reply is a protocol error.
//
// Spliced writes are covered the same way for their tail (the payload
// field); their pipe is checked at the reply (errRepliedEarly), where a
// pipe still holding bytes is proof that the server answered early.

// awaitWritten waits until the writer is done with the request of cookie
// (true), unless it waits for the server (parked), the connection dies,
// or its writer cannot say (false). Called by the reader.
func (c *conn) awaitWritten(cookie uint64) bool {
	if c.raw == nil {
		return false
	}
	for {
		if c.written.Load() >= cookie {
			return true
		}
		if c.parked.Load() {
			return false
		}
		select {
		case <-c.progress: // written or parked changed, or a stale token
		case <-c.dead:
			return false
		}
	}
}

// holdBackLocked keeps cl, a write answered (res) before the writer was
// done with its payload, for the writer to complete. Called by the reader
// with c.mu held, having seen under it that written is still below cl's
// cookie: the writer stores written before it next takes c.mu to look
// for held-back calls, so that look finds cl. It unlocks c.mu. (cl was
// taken by a writer: finish refused it while it was still queued.)
func (c *conn) holdBackLocked(cl *call, res result) error {
	cl.res, cl.replied = res, true
	c.early = append(c.early, cl)
	c.mu.Unlock()
	return nil
}

// takeLateLocked takes the calls held back for the writer. Called by the
// writer between batches, with c.mu held: every call the writer took
// before has then been written in full, or its connection killed (which
// failed it, and emptied early).
func (c *conn) takeLateLocked() []*call {
	late := c.early
	if late == nil {
		return nil
	}
	c.early = nil
	for _, cl := range late {
		delete(c.pending, cl.req.cookie)
	}
	return late
}

// completeLate completes the calls takeLateLocked took, with their
// replies. An asynchronous call's done runs on a goroutine of its own:
// the writer may be the caller of WriteAsync (writeOnCaller), which is
// not to see a done, its own or another's, before WriteAsync returns.
func (c *conn) completeLate(late []*call) {
	for _, cl := range late {
		if cl.async != nil {
			<-c.slots
			go c.completeAsync(cl, cl.res, false)
			continue
		}
		cl.done <- struct{}{}
		<-c.slots
	}
}
