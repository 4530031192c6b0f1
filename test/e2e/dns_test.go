//go:build e2e

package e2e

import (
	"context"
	"net"
	"os"
	"runtime"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

var _ = Describe("the local cluster's DNS", Label("local-cluster"), func() {
	It("answers for the cluster zone and for nothing else", func(ctx SpecContext) {
		name := os.Getenv("E2E_LOCAL_CLUSTER")
		Expect(name).NotTo(BeEmpty(), "E2E_LOCAL_CLUSTER names the local cluster under test (hack/test-e2e.sh sets it)")
		dnsIP := clusterIP(ctx, "kube-system", "kube-dns")
		// The Service address is routed only inside the node's network namespace, as for a pod.
		conn := dialInNetns("/run/netns/kt-"+name, net.JoinHostPort(dnsIP, "53"))
		defer conn.Close()

		Expect(lookupA(conn, "kubernetes.default.svc.cluster.local.")).To(ConsistOf(clusterIP(ctx, "default", "kubernetes")))
		Expect(lookupA(conn, s3Service+"."+operatorNamespace+".svc.cluster.local.")).
			To(ConsistOf(clusterIP(ctx, operatorNamespace, s3Service)))
		// No forwarding: a name outside the cluster gets no address.
		Expect(lookupA(conn, "example.com.")).To(BeEmpty())
	})
})

func clusterIP(ctx context.Context, namespace, name string) string {
	svc := &corev1.Service{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, svc)).To(Succeed())
	return svc.Spec.ClusterIP
}

// dialInNetns opens a UDP socket in the network namespace at path: the socket keeps the namespace
// it was made in, whatever thread uses it later.
func dialInNetns(path, addr string) net.Conn {
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// This thread changes namespace and is thrown away with its goroutine: never unlocked.
		runtime.LockOSThread()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- result{err: err}
			return
		}
		conn, err := net.Dial("udp", addr)
		done <- result{conn, err}
	}()
	r := <-done
	Expect(r.err).NotTo(HaveOccurred(), "a UDP socket to %s in network namespace %s", addr, path)
	return r.conn
}

// lookupA asks for the A records of name and returns their addresses; an error answer (as for a
// name outside the cluster zone) gives none.
func lookupA(conn net.Conn, name string) []string {
	q := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: 4711, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}},
	}
	packet, err := q.Pack()
	Expect(err).NotTo(HaveOccurred())
	Expect(conn.SetDeadline(time.Now().Add(5 * time.Second))).To(Succeed())
	_, err = conn.Write(packet)
	Expect(err).NotTo(HaveOccurred())
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	Expect(err).NotTo(HaveOccurred(), "no DNS answer for %s", name)
	var m dnsmessage.Message
	Expect(m.Unpack(buf[:n])).To(Succeed())
	Expect(m.Header.ID).To(Equal(q.Header.ID))
	GinkgoWriter.Printf("DNS %s: %s, %d answers\n", name, m.Header.RCode, len(m.Answers))
	var addrs []string
	for _, a := range m.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			addrs = append(addrs, net.IP(r.A[:]).String())
		}
	}
	return addrs
}
