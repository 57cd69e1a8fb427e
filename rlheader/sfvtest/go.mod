module github.com/go-hammer/hammer/rlheader/sfvtest

go 1.26.8

replace github.com/go-hammer/hammer => ../../

require (
	github.com/dunglas/httpsfv v1.1.2
	github.com/go-hammer/hammer v0.0.0
	github.com/stretchr/testify v1.12.1
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/redis/go-redis/v9 v9.23.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
