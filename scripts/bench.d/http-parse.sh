# summary: app receiver userspace: HTTP/1 parsing, matching and reporting (routes, histograms, spans) of captured-event-shaped input, events per second on one core (criterion)
# needs: package tapline-protocols
# usage: [criterion arguments]
criterion_bench tapline-protocols http_parse
