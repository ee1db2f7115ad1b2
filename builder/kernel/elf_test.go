package kernel

import (
	"bytes"
	"encoding/binary"
)

// fakeModule returns a minimal ELF64 object whose .modinfo holds info
// (NUL-separated key=value pairs), enough for debug/elf and modinfo.
func fakeModule(info string) []byte {
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	modinfo := []byte(info)
	const ehsize, shentsize = 64, 64
	dataOff := uint64(ehsize)
	shstrOff := dataOff + uint64(len(modinfo))
	shoff := shstrOff + uint64(len(shstr))
	var b bytes.Buffer
	le := binary.LittleEndian
	ident := []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	b.Write(ident)
	binary.Write(&b, le, uint16(1))  // ET_REL
	binary.Write(&b, le, uint16(62)) // x86-64
	binary.Write(&b, le, uint32(1))
	binary.Write(&b, le, uint64(0)) // entry
	binary.Write(&b, le, uint64(0)) // phoff
	binary.Write(&b, le, shoff)
	binary.Write(&b, le, uint32(0))
	binary.Write(&b, le, uint16(ehsize))
	binary.Write(&b, le, uint16(0)) // phentsize
	binary.Write(&b, le, uint16(0)) // phnum
	binary.Write(&b, le, uint16(shentsize))
	binary.Write(&b, le, uint16(3)) // shnum
	binary.Write(&b, le, uint16(2)) // shstrndx
	b.Write(modinfo)
	b.Write(shstr)
	section := func(name uint32, typ uint32, off, size uint64) {
		binary.Write(&b, le, name)
		binary.Write(&b, le, typ)
		binary.Write(&b, le, uint64(0)) // flags
		binary.Write(&b, le, uint64(0)) // addr
		binary.Write(&b, le, off)
		binary.Write(&b, le, size)
		binary.Write(&b, le, uint32(0))
		binary.Write(&b, le, uint32(0))
		binary.Write(&b, le, uint64(1))
		binary.Write(&b, le, uint64(0))
	}
	section(0, 0, 0, 0)
	section(1, 1, dataOff, uint64(len(modinfo))) // .modinfo, PROGBITS
	section(10, 3, shstrOff, uint64(len(shstr))) // .shstrtab, STRTAB
	return b.Bytes()
}
