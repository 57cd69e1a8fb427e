package rlheader

import (
	"errors"
	"strconv"
)

// The serializer of the Structured Field Values (RFC 9651) that the fields
// of this package are made of: Lists of Items whose bare items are Strings,
// with Parameters whose values are Integers.

// maxInteger is the largest Integer an SF value may carry (15 digits,
// RFC 9651, 3.3.1).
const maxInteger = 999_999_999_999_999

var errString = errors.New("an SF String holds only printable ASCII (0x20 to 0x7E)")

// checkString reports whether s can be serialized as an SF String.
func checkString(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return errString
		}
	}
	return nil
}

// appendString appends s serialized as an SF String (RFC 9651, 4.1.6): in
// double quotes, with '"' and '\' escaped by a backslash. s must pass
// checkString.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// appendInteger appends n, which must be within [-maxInteger, maxInteger],
// as an SF Integer (RFC 9651, 4.1.4).
func appendInteger(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

// appendIntegerParam appends the Parameter ";key=n" (RFC 9651, 4.1.1.2):
// key must be an SF Key (lowercase letters here), and n within
// [-maxInteger, maxInteger].
func appendIntegerParam(b []byte, key string, n int64) []byte {
	b = append(b, ';')
	b = append(b, key...)
	b = append(b, '=')
	return appendInteger(b, n)
}

// appendListSep appends the separator of List members (RFC 9651, 4.1.1)
// before the member at index i.
func appendListSep(b []byte, i int) []byte {
	if i > 0 {
		b = append(b, ", "...)
	}
	return b
}
