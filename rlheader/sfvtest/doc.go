// Package sfvtest holds no code: its tests parse the fields of package
// rlheader with github.com/dunglas/httpsfv, an RFC 9651 parser that the
// root module does not depend on. It is a module of its own so that the
// root module keeps its dependencies.
package sfvtest
