# summary: protocol parsers (Redis, PostgreSQL, MySQL, Kafka, HTTP/2 + gRPC) fed captured segments, segments per second on one core (criterion)
# needs: package tapline-protocols
# usage: [criterion arguments]
criterion_bench tapline-protocols protocols
