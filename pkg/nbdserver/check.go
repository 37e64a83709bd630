package nbdserver

// cmdRule is what a command must satisfy before it is served. Every
// request is checked against its command's rule in one place (check), so
// that the handlers only serve, and a rule is read, changed and tested in
// one line of cmdRules rather than found in a switch.
type cmdRule struct {
	known bool
	// advert is the transmission flag that exposes the command (0: always
	// exposed). The client MUST NOT send a command the server did not
	// advertise.
	advert uint16
	// flags are the command flags the command takes. A flag outside them
	// is unknown or "not documented as applicable" (proto.md: EINVAL);
	// one inside them must still have been advertised (flagAdverts).
	flags uint16
	// writes: refused with EPERM on a read-only export.
	writes bool
	// needsMeta: base:allocation must have been negotiated (which needs
	// structured replies).
	needsMeta bool
	// payload: length is a payload length, bounded by MaxBlockSize.
	payload bool
	// nonEmpty: a zero length is refused.
	nonEmpty bool
	// ranged: offset and length must lie within the export; rangeErr is
	// the error when they do not (proto.md: ENOSPC for writes, EINVAL for
	// the rest).
	ranged   bool
	rangeErr uint32
	// simpleErrors: errors go in a simple reply even when structured
	// replies were negotiated, as gdm has always answered the commands
	// that carry no data back. Reads and block status must answer with a
	// chunk then (proto.md), and so does an unknown command (the zero
	// rule), whose reply form the client cannot know.
	simpleErrors bool
}

// cmdRules holds a rule for each command, indexed by its type. FUA is in
// every command's flags: proto.md makes it valid on all commands once
// NBD_FLAG_SEND_FUA is advertised ("the server MUST accept all commands
// with this bit set"), and existing clients do send it on flushes.
// DISC never reaches check: readOne ends the connection on it.
var cmdRules = [...]cmdRule{
	cmdRead: {known: true, flags: cmdFlagFUA | cmdFlagDF,
		payload: true, ranged: true, rangeErr: errInval},
	cmdWrite: {known: true, flags: cmdFlagFUA, writes: true,
		payload: true, ranged: true, rangeErr: errNoSpc, simpleErrors: true},
	cmdFlush: {known: true, advert: tfSendFlush, flags: cmdFlagFUA,
		simpleErrors: true},
	cmdTrim: {known: true, advert: tfSendTrim, flags: cmdFlagFUA, writes: true,
		ranged: true, rangeErr: errInval, simpleErrors: true},
	cmdCache: {known: true, advert: tfSendCache, flags: cmdFlagFUA,
		ranged: true, rangeErr: errInval, simpleErrors: true},
	cmdWriteZeroes: {known: true, advert: tfSendWriteZeroes,
		flags: cmdFlagFUA | cmdFlagNoHole | cmdFlagFastZero, writes: true,
		ranged: true, rangeErr: errNoSpc, simpleErrors: true},
	cmdBlockStatus: {known: true, flags: cmdFlagFUA | cmdFlagReqOne, needsMeta: true,
		nonEmpty: true, ranged: true, rangeErr: errInval},
}

// flagAdverts names the transmission flag that exposes each command flag
// that has one. The client MUST NOT send such a flag unless it was
// advertised; DF in particular is advertised only with structured replies.
// REQ_ONE has none: block status itself is gated by its meta context.
var flagAdverts = [...]struct{ flag, advert uint16 }{
	{cmdFlagFUA, tfSendFUA},
	{cmdFlagNoHole, tfSendWriteZeroes},
	{cmdFlagDF, tfSendDF},
	{cmdFlagFastZero, tfSendFastZero},
}

// unknownCmd is the rule of every command gdm does not know: the zero
// rule, which refuses it.
var unknownCmd cmdRule

// ruleFor returns the rule of command typ. A pointer: check runs on every
// request, and copying the rule cost more than reading it.
func ruleFor(typ uint16) *cmdRule {
	if int(typ) < len(cmdRules) {
		return &cmdRules[typ]
	}
	return &unknownCmd
}

// advertisedCmdFlags is the set of command flags that transmission flags
// tf allow.
func advertisedCmdFlags(tf uint16) uint16 {
	ok := cmdFlagReqOne
	for _, f := range flagAdverts {
		if tf&f.advert != 0 {
			ok |= f.flag
		}
	}
	return ok
}

// check returns the NBD error to refuse request r with, or 0 to serve it.
// A refusal is an error reply and the connection lives on (proto.md: the
// server SHOULD answer EINVAL to an unknown command or a misused flag).
//
// The order decides which error a request broken in two ways gets. A
// write on a read-only export is EPERM before anything else (proto.md's
// SHOULD, and nbdkit's order): the export advertises neither TRIM nor
// WRITE_ZEROES then, but EPERM tells the client why. An over-long
// payload is EINVAL before the range's ENOSPC, as gdm has always answered.
func (c *conn) check(r request) uint32 {
	rule := ruleFor(r.typ)
	switch {
	case !rule.known:
		return errInval
	case rule.writes && c.readOnly:
		return errPerm
	case c.flags&rule.advert != rule.advert:
		return errInval
	case rule.needsMeta && !c.metaAllocation:
		return errInval
	case r.flags&^rule.flags != 0:
		return errInval
	case r.flags != 0 && r.flags&^advertisedCmdFlags(c.flags) != 0:
		return errInval
	case rule.payload && r.length > MaxBlockSize:
		return errInval
	case rule.nonEmpty && r.length == 0:
		return errInval
	case rule.ranged && !c.inRange(r):
		return rule.rangeErr
	}
	return 0
}

// inRange reports whether r's offset and length lie within the export,
// without overflowing however large the client made them.
func (c *conn) inRange(r request) bool {
	return r.offset <= uint64(c.size) && uint64(r.length) <= uint64(c.size)-r.offset
}

// refuse answers r with errno in the reply form its command uses.
func (c *conn) refuse(rep *reply, r request, errno uint32) {
	if ruleFor(r.typ).simpleErrors {
		c.simpleReply(rep, r.cookie, errno)
		return
	}
	c.errorReply(rep, r, errno)
}
