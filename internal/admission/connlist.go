package admission

// link is a connection's place in one connList.
type link struct{ prev, next *Conn }

// connList is a doubly linked list of connections, oldest first, threaded
// through the connections themselves (Conn.links[k]), so that moving a
// connection between idle and active on every request allocates nothing.
// A connection is in at most one list per slot k: slot 0 holds its
// source's pending or idle list, slot 1 the listener's idle list. The
// zero value with k set is empty. Callers hold the controller's lock.
type connList struct {
	head, tail *Conn
	n          int
	k          int
}

// Len is the number of connections in l.
func (l *connList) Len() int { return l.n }

// Front is the oldest connection in l, or nil.
func (l *connList) Front() *Conn { return l.head }

// PushBack appends c, which must not be in a list of l's slot.
func (l *connList) PushBack(c *Conn) {
	c.links[l.k] = link{prev: l.tail}
	if l.tail != nil {
		l.tail.links[l.k].next = c
	} else {
		l.head = c
	}
	l.tail = c
	l.n++
}

// Remove takes c, which must be in l, out of l.
func (l *connList) Remove(c *Conn) {
	ln := c.links[l.k]
	if ln.prev != nil {
		ln.prev.links[l.k].next = ln.next
	} else {
		l.head = ln.next
	}
	if ln.next != nil {
		ln.next.links[l.k].prev = ln.prev
	} else {
		l.tail = ln.prev
	}
	c.links[l.k] = link{}
	l.n--
}
