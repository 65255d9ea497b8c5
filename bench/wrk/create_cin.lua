-- wrk script: each wrk thread is one keep-alive client writing contentInstances into its own
-- container (/cse-in/bench<N>/data, originator Cbench<N>). Counts answers that are not 2001.
local next_id = 0
local threads = {}

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  path = "/cse-in/bench" .. id .. "/data"
  wrk.method = "POST"
  wrk.headers["X-M2M-Origin"] = "Cbench" .. id
  wrk.headers["X-M2M-RVI"] = "3"
  wrk.headers["Content-Type"] = "application/json;ty=4"
  wrk.body = '{"m2m:cin":{"cnf":"application/json:0",' ..
             '"con":"{\\"temperature\\":21.4,\\"humidity\\":48.2,\\"ts\\":1764000000}"}}'
  seq = 0
  bad = 0
end

function request()
  seq = seq + 1
  wrk.headers["X-M2M-RI"] = id .. "-" .. seq
  return wrk.format(nil, path)
end

function response(status, headers, body)
  if status ~= 201 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total_bad = 0
  for _, thread in ipairs(threads) do
    total_bad = total_bad + thread:get("bad")
  end
  io.write(string.format("non-2001 answers: %d\n", total_bad))
end
