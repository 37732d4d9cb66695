# summary: app receiver userspace: captured events through the tracker, the HTTP/1 parser, route matching and reporting (histograms, spans), events per second on one core (criterion)
# needs: package tapline-receivers
# usage: [criterion arguments]
criterion_bench tapline-receivers app_report
