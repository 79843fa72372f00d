package tree

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxPathLen is the longest path accepted, in bytes.
const MaxPathLen = 4096

// ValidatePath checks p against ZooKeeper's path rules: it must be absolute,
// must not end in '/' (except the root "/"), must not contain empty, "." or
// ".." segments, must be valid UTF-8 without control or reserved characters,
// and must be at most MaxPathLen bytes. The error wraps ErrInvalidPath and says
// which rule failed at which byte offset.
func ValidatePath(p string) error {
	if p == "" {
		return fmt.Errorf("%w: path is empty", ErrInvalidPath)
	}
	if len(p) > MaxPathLen {
		return fmt.Errorf("%w: path is %d bytes, longer than %d", ErrInvalidPath, len(p), MaxPathLen)
	}
	if p[0] != '/' {
		return fmt.Errorf("%w: %q must start with '/'", ErrInvalidPath, p)
	}
	if p == "/" {
		return nil
	}
	if p[len(p)-1] == '/' {
		return fmt.Errorf("%w: %q must not end with '/'", ErrInvalidPath, p)
	}
	segStart := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		switch seg := p[segStart:i]; seg {
		case "":
			return fmt.Errorf("%w: %q has an empty segment at byte %d", ErrInvalidPath, p, i)
		case ".", "..":
			return fmt.Errorf("%w: %q has a relative segment %q at byte %d", ErrInvalidPath, p, seg, segStart)
		}
		segStart = i + 1
	}
	for i, r := range p {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(p[i:]); size <= 1 {
				return fmt.Errorf("%w: %q is not valid UTF-8 at byte %d", ErrInvalidPath, p, i)
			}
		}
		if invalidPathRune(r) {
			return fmt.Errorf("%w: %q has invalid character %U at byte %d", ErrInvalidPath, p, r, i)
		}
	}
	return nil
}

// invalidPathRune reports the characters ZooKeeper refuses in paths: NUL,
// C0 and C1 controls, DEL, surrogates and the private use area, and the
// specials block.
func invalidPathRune(r rune) bool {
	return r == 0 ||
		(r > 0 && r <= 0x1f) ||
		(r >= 0x7f && r <= 0x9f) ||
		(r >= 0xd800 && r <= 0xf8ff) ||
		(r >= 0xfff0 && r <= 0xffff)
}

// validateCreatePath validates a create's path. A sequential create may end in
// '/' because the sequence suffix will follow, as in ZooKeeper.
func validateCreatePath(p string, sequential bool) error {
	if sequential {
		if err := ValidatePath(p + "1"); err != nil {
			return err
		}
		return nil
	}
	return ValidatePath(p)
}

// splitPath returns the parent path and the last segment of a valid path
// other than the root.
func splitPath(p string) (parent, name string) {
	i := strings.LastIndexByte(p, '/')
	if i == 0 {
		return "/", p[1:]
	}
	return p[:i], p[i+1:]
}

// joinPath returns parent + "/" + name without doubling the root's slash.
func joinPath(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}
