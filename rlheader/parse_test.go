package rlheader

import (
	"errors"
	"strconv"
)

// A small parser of RFC 9651 Lists, written from the RFC's parsing
// algorithms (section 4.2) and independent of the serializer: it reads
// back what the package writes. It knows Items whose bare items are
// Strings, Tokens or Integers, with Parameters of the same types or true;
// Inner Lists, Decimals, Byte Sequences and the rest are errors.

// sfParam is one Parameter; a Parameter without a value is the Boolean
// true, kept as the Token "?1".
type sfParam struct {
	key string
	val any // string (String), sfToken, int64 or bool
}

// sfToken is a Token bare item.
type sfToken string

// sfItem is one Item of a List.
type sfItem struct {
	val    any // string (String), sfToken or int64
	params []sfParam
}

// param returns the value of the Parameter key, and whether it is there.
func (it sfItem) param(key string) (any, bool) {
	for _, p := range it.params {
		if p.key == key {
			return p.val, true
		}
	}
	return nil, false
}

var errSyntax = errors.New("sf: syntax error")

type sfParser struct {
	s string
	i int
}

// parseList parses a List field value (RFC 9651, 4.2 and 4.2.1).
func parseList(s string) ([]sfItem, error) {
	p := &sfParser{s: s}
	p.skipSP()
	var items []sfItem
	for p.i < len(p.s) {
		it, err := p.item()
		if err != nil {
			return nil, err
		}
		items = append(items, it)
		p.skipOWS()
		if p.i == len(p.s) {
			return items, nil
		}
		if p.s[p.i] != ',' {
			return nil, errSyntax
		}
		p.i++
		p.skipOWS()
		if p.i == len(p.s) {
			return nil, errSyntax // a trailing comma
		}
	}
	return items, nil
}

func (p *sfParser) skipSP() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *sfParser) item() (sfItem, error) {
	v, err := p.bareItem()
	if err != nil {
		return sfItem{}, err
	}
	it := sfItem{val: v}
	for p.i < len(p.s) && p.s[p.i] == ';' {
		p.i++
		p.skipSP()
		k, err := p.key()
		if err != nil {
			return sfItem{}, err
		}
		var pv any = true
		if p.i < len(p.s) && p.s[p.i] == '=' {
			p.i++
			if pv, err = p.bareItem(); err != nil {
				return sfItem{}, err
			}
		}
		for j := range it.params {
			if it.params[j].key == k { // a later value replaces an earlier
				it.params = append(it.params[:j], it.params[j+1:]...)
				break
			}
		}
		it.params = append(it.params, sfParam{k, pv})
	}
	return it, nil
}

func (p *sfParser) key() (string, error) {
	start := p.i
	if p.i == len(p.s) || !(p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] == '*') {
		return "", errSyntax
	}
	for p.i < len(p.s) {
		c := p.s[p.i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		p.i++
	}
	return p.s[start:p.i], nil
}

func (p *sfParser) bareItem() (any, error) {
	if p.i == len(p.s) {
		return nil, errSyntax
	}
	switch c := p.s[p.i]; {
	case c == '-' || c >= '0' && c <= '9':
		return p.integer()
	case c == '"':
		return p.str()
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '*':
		return p.token(), nil
	}
	return nil, errSyntax
}

func (p *sfParser) integer() (int64, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	if n := p.i - digits; n == 0 || n > 15 {
		return 0, errSyntax
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		return 0, errSyntax // a Decimal
	}
	return strconv.ParseInt(p.s[start:p.i], 10, 64)
}

func (p *sfParser) str() (string, error) {
	p.i++ // the opening quote
	var out []byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.i == len(p.s) || p.s[p.i] != '"' && p.s[p.i] != '\\' {
				return "", errSyntax
			}
			out = append(out, p.s[p.i])
			p.i++
		case c == '"':
			return string(out), nil
		case c < 0x20 || c > 0x7e:
			return "", errSyntax
		default:
			out = append(out, c)
		}
	}
	return "", errSyntax // no closing quote
}

func (p *sfParser) token() sfToken {
	start := p.i
	p.i++
	for p.i < len(p.s) {
		c := p.s[p.i]
		if !(isTChar(c) || c == ':' || c == '/') {
			break
		}
		p.i++
	}
	return sfToken(p.s[start:p.i])
}

// isTChar reports whether c is a tchar of RFC 9110, 5.6.2.
func isTChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
