-- Runs one of Segue's REAPER companion scripts outside REAPER, on a small emulated project.
--
-- Modelled on REAPER's ReaScript API documentation (https://www.reaper.fm/sdk/reascript/reascripthelp.html:
-- InsertMedia's mode bits, GetSetProjectInfo/GetSetProjectInfo_String render keys, TimeMap2_QNToTime,
-- PCM_Source_CreateFromFile, GetMediaSourceLength, GetMediaSourceFileName, DeleteTrack) and its
-- ReaScript how-to on undo ("Undo points are created for ReaScripts by default ... a script can call
-- defer()"), and on the way public scripts call the same functions.
--
--   lua5.4 tests/reaper_emulation.lua <project.lua> <script.lua> <project-after.txt>
--
-- <project.lua> returns the project table (tempo, signature, cursor, time selection, tracks with
-- items, render settings). The `reaper` table below implements the ReaScript calls the companions
-- use, as REAPER's API documentation describes them, on that project. Afterwards the project is
-- written to <project-after.txt> as key=value lines for the Python test to read.

local project_file, script_file, after_file = arg[1], arg[2], arg[3]
local project = dofile(project_file)
project.undo = {}
project.ui_refresh_depth = 0
project.sample_rate = project.sample_rate or 8000

local function wav_seconds(path)
  -- Length of a RIFF/WAVE file from its fmt and data chunks; nil when REAPER could not read it.
  local handle = io.open(path, "rb")
  if not handle then return nil end
  local bytes = handle:read("a")
  handle:close()
  if bytes:sub(1, 4) ~= "RIFF" or bytes:sub(9, 12) ~= "WAVE" then return nil end
  local position, byte_rate = 13, nil
  while position + 8 <= #bytes do
    local id, size = bytes:sub(position, position + 3), string.unpack("<I4", bytes, position + 4)
    if id == "fmt " then byte_rate = string.unpack("<I4", bytes, position + 16) end
    if id == "data" and byte_rate then return size / byte_rate end
    position = position + 8 + size + (size % 2)
  end
  return nil
end

local function write_silent_wav(path, seconds, rate, channels)
  local frames = math.floor(seconds * rate + 0.5)
  local data = string.rep("\0\0", frames * channels)
  local header = "RIFF" .. string.pack("<I4", 36 + #data) .. "WAVE" ..
    "fmt " .. string.pack("<I4I2I2I4I4I2I2", 16, 1, channels, rate, rate * 2 * channels, 2 * channels, 16) ..
    "data" .. string.pack("<I4", #data)
  local handle = assert(io.open(path, "wb"))
  handle:write(header, data)
  handle:close()
end

-- Tempo map: project.tempo from the start, then project.tempo_changes = { { qn = 16, tempo = 60 }, ... }
-- (each a new tempo from that quarter note on, in order).
local function tempo_segments()
  local segments, seconds, qn, tempo = {}, 0.0, 0.0, project.tempo
  for _, change in ipairs(project.tempo_changes or {}) do
    segments[#segments + 1] = { qn = qn, seconds = seconds, tempo = tempo }
    seconds = seconds + (change.qn - qn) * 60.0 / tempo
    qn, tempo = change.qn, change.tempo
  end
  segments[#segments + 1] = { qn = qn, seconds = seconds, tempo = tempo }
  return segments
end

local function item_file(item) return item.take.source.file end

reaper = {}

function reaper.GetOS() return "Other" end
function reaper.ShowConsoleMsg(text) io.stderr:write(text) end
function reaper.GetCursorPosition() return project.cursor end
function reaper.SetEditCurPos(time, moveview, seekplay) project.cursor = time end
function reaper.TimeMap_GetTimeSigAtTime(proj, time)
  local tempo = project.tempo
  for _, segment in ipairs(tempo_segments()) do
    if time >= segment.seconds then tempo = segment.tempo end
  end
  return project.signature[1], project.signature[2], tempo
end
-- Through the tempo map, as REAPER does.
function reaper.TimeMap2_QNToTime(proj, qn)
  local found
  for _, segment in ipairs(tempo_segments()) do
    if qn >= segment.qn then found = segment end
  end
  return found.seconds + (qn - found.qn) * 60.0 / found.tempo
end
function reaper.file_exists(path)
  local handle = io.open(path, "rb")
  if handle then handle:close() return true end
  return false
end
function reaper.CountTracks(proj) return #project.tracks end
function reaper.GetTrack(proj, index) return project.tracks[index + 1] end
function reaper.InsertTrackAtIndex(index, want_defaults)
  table.insert(project.tracks, index + 1, { name = "", items = {} })
end
function reaper.DeleteTrack(track)
  for index, candidate in ipairs(project.tracks) do
    if candidate == track then table.remove(project.tracks, index) return end
  end
end
function reaper.GetSetMediaTrackInfo_String(track, name, value, set)
  assert(name == "P_NAME", "emulation only knows P_NAME")
  if set then track.name = value end
  return true, track.name
end
-- A track's items in position order, as REAPER keeps them.
local function sort_items(track)
  table.sort(track.items, function(a, b) return a.position < b.position end)
end
function reaper.CountTrackMediaItems(track) return #track.items end
function reaper.GetTrackMediaItem(track, index) return track.items[index + 1] end
function reaper.GetActiveTake(item) return item.take end
function reaper.GetMediaItemTake_Source(take) return take.source end
-- Lua form of the C API's (source, filenamebuf, filenamebuf_sz): returns the file name.
function reaper.GetMediaSourceFileName(source, buffer) return source.file end
function reaper.GetMediaItemInfo_Value(item, name)
  if name == "D_POSITION" then return item.position end
  if name == "D_LENGTH" then return item.length end
  error("emulation does not know " .. name)
end
-- A source for any existing file; its length is 0 when REAPER cannot decode it.
function reaper.PCM_Source_CreateFromFile(file)
  if not reaper.file_exists(file) then return nil end
  return { file = file, seconds = wav_seconds(file) or 0 }
end
function reaper.GetMediaSourceLength(source) return source.seconds, false end
function reaper.PCM_Source_Destroy(source) source.destroyed = true end

local function new_item(file, position, length)
  return { position = position, length = length, take = { source = { file = file } } }
end

-- mode 0 = current track, &512 = the high word is the track index; REAPER moves the edit cursor
-- to the end of what it inserted (the companion must put it back). With "trim content behind media
-- items" (project.trim_behind) an item the new one lands inside is split around it: its head
-- stays, its tail becomes a NEW item, so the track gains two items. project.refuse_insert stands
-- for REAPER declining a file it can read (returns 0, adds nothing); project.copy_media_to stands for
-- the preference that copies imported media into the project's folder (the item's source is the copy).
function reaper.InsertMedia(file, mode)
  local seconds = wav_seconds(file)
  if not seconds or project.refuse_insert then return 0 end
  assert(mode & 512 ~= 0, "Segue always names the track (mode & 512)")
  local track = project.tracks[((mode >> 16) & 0xFFFF) + 1]
  if not track then return 0 end
  local start, stop = project.cursor, project.cursor + seconds
  if project.trim_behind then
    for _, item in ipairs({ table.unpack(track.items) }) do
      local item_end = item.position + item.length
      if item.position < start and item_end > stop then
        item.length = start - item.position
        local tail = new_item(item_file(item), stop, item_end - stop)
        table.insert(track.items, tail)
      end
    end
  end
  local source_file = project.copy_media_to and (project.copy_media_to .. "/" .. file:match("[^/\\]+$")) or file
  table.insert(track.items, new_item(source_file, start, seconds))
  sort_items(track)
  project.cursor = stop
  return 1
end
function reaper.PreventUIRefresh(delta) project.ui_refresh_depth = project.ui_refresh_depth + delta end
function reaper.Undo_BeginBlock() project.undo_open = (project.undo_open or 0) + 1 end
function reaper.Undo_EndBlock(description, flags)
  project.undo_open = project.undo_open - 1
  project.undo_blocks = (project.undo_blocks or 0) + 1
  table.insert(project.undo, description)
end
-- "Undo points are created for ReaScripts by default. To prevent the automatic addition of an
-- undo point, a script can call defer()" (ReaScript documentation, Undo). A script's own block
-- stands instead of the automatic point.
function reaper.defer(callback) project.deferred = true end
function reaper.UpdateArrange() end
function reaper.GetSet_LoopTimeRange2(proj, set, is_loop, start_time, end_time, allow_autoseek)
  return project.time_selection[1], project.time_selection[2]
end
function reaper.GetSetProjectInfo(proj, name, value, set)
  if set then project.render[name] = value end
  return project.render[name]
end
function reaper.GetSetProjectInfo_String(proj, name, value, set)
  if set then project.render[name] = value end
  return true, project.render[name]
end
-- 42230: render with the most recent settings. Only what Segue asks for is emulated (custom
-- bounds, master mix, WAV), at RENDER_SRATE (0: the project's rate) with RENDER_CHANNELS channels;
-- a RENDER_FORMAT2 adds a second file. The settings in force are kept for the test to read.
function reaper.Main_OnCommand(command, flag)
  assert(command == 42230, "emulation only renders")
  local render = project.render
  project.rendered_with = {}
  for name, value in pairs(render) do project.rendered_with[name] = value end
  if render.RENDER_BOUNDSFLAG == 0 and render.RENDER_SETTINGS == 0 and render.RENDER_FORMAT == "evaw" then
    local base = render.RENDER_FILE .. "/" .. render.RENDER_PATTERN
    local rate = render.RENDER_SRATE ~= 0 and render.RENDER_SRATE or project.sample_rate
    local seconds = render.RENDER_ENDPOS - render.RENDER_STARTPOS
    write_silent_wav(base .. ".wav", seconds, math.tointeger(rate), math.tointeger(render.RENDER_CHANNELS))
    if render.RENDER_FORMAT2 ~= "" then write_silent_wav(base .. ".second-format", seconds, 8000, 1) end
  end
end

dofile(script_file)
if not project.deferred and (project.undo_blocks or 0) == 0 then table.insert(project.undo, "ReaScript: Run") end

local lines = {
  "cursor=" .. string.format("%.10g", project.cursor),
  "undo=" .. table.concat(project.undo, "|"),
  "undo_open=" .. tostring(project.undo_open or 0),
  "ui_refresh_depth=" .. project.ui_refresh_depth,
  "tracks=" .. #project.tracks,
}
for index, track in ipairs(project.tracks) do
  lines[#lines + 1] = "track" .. index .. "_name=" .. track.name
  for number, item in ipairs(track.items) do
    lines[#lines + 1] = string.format("track%d_item%d=%.10g|%.10g|%s", index, number, item.position, item.length, item_file(item))
  end
end
for name, value in pairs(project.render) do lines[#lines + 1] = name .. "=" .. tostring(value) end
for name, value in pairs(project.rendered_with or {}) do lines[#lines + 1] = "rendered_" .. name .. "=" .. tostring(value) end
local handle = assert(io.open(after_file, "w"))
handle:write(table.concat(lines, "\n"), "\n")
handle:close()
