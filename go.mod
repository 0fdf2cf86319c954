module github.com/intesys/ship-action

go 1.26.8

require (
	github.com/google/go-containerregistry v0.22.1 // indirect
	github.com/google/go-github/v60 v60.0.0 // indirect
	github.com/klauspost/compress v1.20.4 // indirect
	github.com/klauspost/pgzip v1.2.6 // indirect
	github.com/moby/buildkit v0.32.2 // indirect
	github.com/moby/patternmatcher v0.6.1 // indirect
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3 // indirect
	github.com/sethvargo/go-githubactions v1.3.2 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/text v0.40.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
