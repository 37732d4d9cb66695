# summary: the HTTP/1.x parser alone (tapline-protocols) on the same request mix as app-report, events per second on one core (criterion)
# needs: package tapline-protocols
# usage: [criterion arguments]
criterion_bench tapline-protocols http_parse
