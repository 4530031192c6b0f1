package testutil

import "net"

// FreeAddr is a loopback address with a port nobody listens on right now, for a server the test
// starts on it next (a rank 0, a manager's metrics).
func FreeAddr(t interface {
	Helper()
	Fatal(args ...any)
}) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
