-- wrk script: small non-streaming chat completion, same session every time.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-demo-local-0000"
wrk.headers["x-session-id"] = "bench-session"
wrk.body = '{"model":"llama3-8b","max_tokens":1,"messages":[{"role":"user","content":"Say hi in one word."}]}'
