package qemu

import (
	"bytes"
	"regexp"
)

// kernelStamp heads a kernel message on the serial console. printk writes
// to the port directly, so a kernel message can land in the middle of a
// line the init writes through the tty (a DHCP lease line was once cut by
// "IPv6: ADDRCONF(NETDEV_CHANGE)" and its event was never found).
var (
	kernelStamp = regexp.MustCompile(`\[ *[0-9]+\.[0-9]{6}\] `)
	kernelLine  = regexp.MustCompile(`^\[ *[0-9]+\.[0-9]{6}\] `)
)

const initPrefix = "rke2-init "

// untangle returns the whole lines of the console text b with every
// kernel message that cut into an init line moved after that line, made
// whole again, and how many bytes of b it has read. An init line whose
// rest has not arrived yet is left for the next look, unless final (QEMU
// has exited: what is there is all there will be).
func untangle(b []byte, final bool) (out []byte, used int) {
	out = make([]byte, 0, len(b))
	for used < len(b) {
		i := bytes.IndexByte(b[used:], '\n')
		if i < 0 {
			if final {
				out = append(out, b[used:]...)
				used = len(b)
			}
			break
		}
		line := b[used : used+i]
		loc := kernelStamp.FindIndex(line)
		if !bytes.HasPrefix(line, []byte(initPrefix)) || loc == nil {
			out = append(out, b[used:used+i+1]...)
			used += i + 1
			continue
		}
		// The init's line, cut at loc by one or more whole kernel
		// messages; its rest is the first line after them.
		head, kernel := line[:loc[0]], [][]byte{line[loc[0]:]}
		next := used + i + 1
		var rest []byte
		complete := false
		for next < len(b) {
			j := bytes.IndexByte(b[next:], '\n')
			if j < 0 {
				break
			}
			l := b[next : next+j]
			next += j + 1
			if kernelLine.Match(l) {
				kernel = append(kernel, l)
				continue
			}
			rest, complete = l, true
			break
		}
		if !complete {
			if !final {
				break
			}
			rest, next = b[next:], len(b)
		}
		out = append(out, head...)
		out = append(out, rest...)
		out = append(out, '\n')
		for _, k := range kernel {
			out = append(out, k...)
			out = append(out, '\n')
		}
		used = next
	}
	return out, used
}
