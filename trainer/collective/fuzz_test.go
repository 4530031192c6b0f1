package collective

import (
	"bytes"
	"testing"
)

// FuzzFrames feeds arbitrary bytes to the readers of what peers send: a frame header, a hello and
// the table of ranks. None may panic or read past its limits, and what a reader accepts is what
// its writer would have written.
func FuzzFrames(f *testing.F) {
	var b bytes.Buffer
	c := &Comm{cfg: Config{Rank: 3, Size: 4, Secret: "job/attempt-0"}}
	writeFrame(&b, frameHello, c.hello(purposeJoin, "10.0.0.7:29500"))
	f.Add(b.Bytes())
	b.Reset()
	writeFrame(&b, frameTable, encodeTable([]string{"a:1", "b:2", "c:3", "d:4"}))
	f.Add(b.Bytes())
	f.Add([]byte("KTC1\x03\xff\xff\xff\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range []byte{frameHello, frameTable, frameData} {
			payload, err := readFrame(bytes.NewReader(data), typ, maxTableBytes)
			if err != nil {
				continue
			}
			if len(payload) > maxTableBytes {
				t.Fatalf("read a payload of %d bytes, over the limit", len(payload))
			}
			if h, err := parseHello(payload); err == nil {
				re := &Comm{cfg: Config{Rank: h.rank, Size: h.size}}
				got := re.hello(h.purpose, h.addr)
				copy(got[1:33], h.token[:])
				if !bytes.Equal(got, payload) {
					t.Fatalf("hello %x parses to %+v, which writes back as %x", payload, h, got)
				}
			}
			if len(payload) >= 4 {
				size := int(uint32(payload[0]) | uint32(payload[1])<<8 | uint32(payload[2])<<16 | uint32(payload[3])<<24)
				if size <= maxRanks {
					if table, err := decodeTable(payload, size); err == nil && !bytes.Equal(encodeTable(table), payload) {
						t.Fatalf("table %x decodes to %q, which encodes differently", payload, table)
					}
				}
			}
		}
	})
}
