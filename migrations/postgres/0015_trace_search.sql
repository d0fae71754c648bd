-- Full-text search over the trace list: a GIN index of the user message and the AI response
-- (the `simple` configuration: lowercased words, no stemming, no stop words, so any word a
-- trace holds can be found). Metadata filters are exact substring probes of the metadata
-- JSON on the walk of the list (see `db::trace_search`).
CREATE INDEX traces_search ON traces
    USING GIN (to_tsvector('simple', user_message || ' ' || ai_response));
