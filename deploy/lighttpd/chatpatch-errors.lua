-- chatpatch: the answers lighttpd makes itself, in JSON (see chatpatch.conf).
--
-- lighttpd runs this as each answer starts (magnet.attract-response-start-to,
-- mod_magnet: Debian package lighttpd-modules-lua). The workers' own answers
-- always carry X-Request-Id and pass untouched. An error without one is
-- lighttpd's own (a request it refused, a body over server.max-request-size,
-- workers it cannot reach): its HTML body is replaced with the JSON body the
-- workers would send for that status and path, as `chatpatch --print-errors`
-- wrote them from the API profiles, with the headers every chatpatch answer
-- carries, Retry-After: 1 on 503 as on the workers' own 503, and the API's
-- Access-Control-Allow-Origin (routes.tsv). No API fact is written here:
-- they all come from that folder.

-- EDIT: the folder `chatpatch --print-errors` wrote (make install: under
-- share/chatpatch/errors).
local ERRORS = "/usr/local/share/chatpatch/errors"

local r = lighty.r
local status = r.req_item.http_status
if status < 400 or r.resp_header["X-Request-Id"] ~= nil then
  return 0
end

-- As the nginx snippet does: a body too large and no worker reachable are
-- answered in the shape of the API whose path it is, every other refusal
-- (a malformed request, ...) in the generic shape.
local PER_API = { [413] = true, [503] = true }

-- The API whose path this is, from the path as the client sent it (the
-- query string cut off): routes.tsv has one line per API, name, path
-- prefix, Allow and Access-Control-Allow-Origin ("-": none), tab-separated.
local target = (r.req_attr["request.uri"] or ""):gsub("%?.*", "")
local folder, origin = "", nil
local routes = PER_API[status] and io.open(ERRORS .. "/routes.tsv")
if routes then
  for line in routes:lines() do
    local _, prefix, _, o = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$")
    if prefix and target:sub(1, #prefix) == prefix then
      folder = prefix:sub(1, -2)
      if o ~= "-" then origin = o end
      break
    end
  end
  routes:close()
end

local doc = io.open(ERRORS .. folder .. "/" .. status .. ".json")
if doc == nil then -- a status no document exists for: the generic one
  doc = io.open(ERRORS .. "/" .. status .. ".json")
end
if doc then
  -- Returning the status (below) marks the new body complete.
  r.resp_body.set({ doc:read("a") })
  doc:close()
  r.resp_header["Content-Type"] = "application/json; charset=utf-8"
end

local id = {}
for i = 1, 4 do
  id[i] = string.format("%08x", lighty.c.rand() & 0xffffffff)
end
r.resp_header["X-Request-Id"] = table.concat(id)
r.resp_header["Cache-Control"] = "no-store"
if status == 503 then
  r.resp_header["Retry-After"] = "1"
end
if origin then
  r.resp_header["Access-Control-Allow-Origin"] = origin
end
return status
