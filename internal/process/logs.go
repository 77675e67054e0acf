package process

import (
	"io"
	"os"
	"strings"
)

// tailBytes is how much of the end of a log tail reads: plenty for ten
// lines of any sane program.
const tailBytes = 8 << 10

// maxLineLen shortens lines quoted in errors, so that one huge line does
// not drown the message.
const maxLineLen = 300

// tail returns the last n lines of the file at path.
func tail(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read only
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(0, st.Size()-tailBytes)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return nil, err
	}
	text := strings.TrimRight(string(buf), "\n")
	if text == "" {
		return nil, nil
	}
	lines := strings.Split(text, "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // the first line is cut
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > maxLineLen {
			lines[i] = l[:maxLineLen] + "…"
		}
	}
	return lines, nil
}
