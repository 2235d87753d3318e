module custodia.example/go-tlog-verify

go 1.19

require golang.org/x/mod v0.7.0

// Built offline against Debian's golang-golang-x-mod-dev; run.sh sets GOPROXY=off.
replace golang.org/x/mod => /usr/share/gocode/src/golang.org/x/mod
