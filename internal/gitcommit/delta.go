package gitcommit

import "fmt"

// applyDelta rebuilds an object from its base and a git delta: the base
// and result sizes, then instructions that copy a range of the base or
// insert literal bytes.
func applyDelta(base, delta []byte) ([]byte, error) {
	srcSize, delta, err := deltaSize(delta)
	if err != nil {
		return nil, err
	}
	dstSize, delta, err := deltaSize(delta)
	if err != nil {
		return nil, err
	}
	if srcSize != uint64(len(base)) {
		return nil, fmt.Errorf("delta expects a base of %d bytes, base has %d", srcSize, len(base))
	}
	if dstSize > maxObjectSize {
		return nil, fmt.Errorf("delta result of %d bytes, more than the %d allowed", dstSize, maxObjectSize)
	}
	out := make([]byte, 0, dstSize)
	for len(delta) > 0 {
		cmd := delta[0]
		delta = delta[1:]
		switch {
		case cmd&0x80 != 0:
			var off, n uint64
			for i := range 7 {
				if cmd&(1<<i) == 0 {
					continue
				}
				if len(delta) == 0 {
					return nil, fmt.Errorf("delta copy instruction truncated")
				}
				if i < 4 {
					off |= uint64(delta[0]) << (8 * i)
				} else {
					n |= uint64(delta[0]) << (8 * (i - 4))
				}
				delta = delta[1:]
			}
			if n == 0 {
				n = 0x10000
			}
			if off+n > uint64(len(base)) || uint64(len(out))+n > dstSize {
				return nil, fmt.Errorf("delta copy out of range")
			}
			out = append(out, base[off:off+n]...)
		case cmd != 0:
			n := int(cmd)
			if n > len(delta) || uint64(len(out)+n) > dstSize {
				return nil, fmt.Errorf("delta insert out of range")
			}
			out = append(out, delta[:n]...)
			delta = delta[n:]
		default:
			return nil, fmt.Errorf("delta has a reserved instruction 0")
		}
	}
	if uint64(len(out)) != dstSize {
		return nil, fmt.Errorf("delta result has %d bytes, header says %d", len(out), dstSize)
	}
	return out, nil
}

// deltaSize reads a size at the start of a delta: little-endian groups of
// 7 bits.
func deltaSize(b []byte) (uint64, []byte, error) {
	var n uint64
	for i, shift := 0, 0; i < len(b); i, shift = i+1, shift+7 {
		if shift > 56 {
			break
		}
		n |= uint64(b[i]&0x7f) << shift
		if b[i]&0x80 == 0 {
			return n, b[i+1:], nil
		}
	}
	return 0, nil, fmt.Errorf("delta size truncated or too long")
}
