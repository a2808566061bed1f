-- Runs one of Segue's REAPER companion scripts outside REAPER, on a small emulated project.
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

local function write_silent_wav(path, seconds)
  local rate, frames = 8000, math.floor(seconds * 8000 + 0.5)
  local data = string.rep("\0\0", frames)
  local header = "RIFF" .. string.pack("<I4", 36 + #data) .. "WAVE" ..
    "fmt " .. string.pack("<I4I2I2I4I4I2I2", 16, 1, 1, rate, rate * 2, 2, 16) ..
    "data" .. string.pack("<I4", #data)
  local handle = assert(io.open(path, "wb"))
  handle:write(header, data)
  handle:close()
end

reaper = {}

function reaper.GetOS() return "Other" end
function reaper.ShowConsoleMsg(text) io.stderr:write(text) end
function reaper.GetCursorPosition() return project.cursor end
function reaper.SetEditCurPos(time, moveview, seekplay) project.cursor = time end
function reaper.TimeMap_GetTimeSigAtTime(proj, time)
  return project.signature[1], project.signature[2], project.tempo
end
function reaper.TimeMap2_QNToTime(proj, qn) return qn * 60.0 / project.tempo end
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
function reaper.GetSetMediaTrackInfo_String(track, name, value, set)
  assert(name == "P_NAME", "emulation only knows P_NAME")
  if set then track.name = value end
  return true, track.name
end
function reaper.CountTrackMediaItems(track) return #track.items end
function reaper.GetTrackMediaItem(track, index) return track.items[index + 1] end
function reaper.GetMediaItemInfo_Value(item, name)
  if name == "D_POSITION" then return item.position end
  if name == "D_LENGTH" then return item.length end
  error("emulation does not know " .. name)
end
-- mode 0 = current track, &512 = the high word is the track index; REAPER moves the edit cursor
-- to the end of what it inserted (the companion must put it back).
function reaper.InsertMedia(file, mode)
  local seconds = wav_seconds(file)
  if not seconds then return 0 end
  assert(mode & 512 ~= 0, "Segue always names the track (mode & 512)")
  local track = project.tracks[((mode >> 16) & 0xFFFF) + 1]
  if not track then return 0 end
  table.insert(track.items, { file = file, position = project.cursor, length = seconds })
  project.cursor = project.cursor + seconds
  return 1
end
function reaper.PreventUIRefresh(delta) project.ui_refresh_depth = project.ui_refresh_depth + delta end
function reaper.Undo_BeginBlock() project.undo_open = (project.undo_open or 0) + 1 end
function reaper.Undo_EndBlock(description, flags)
  project.undo_open = project.undo_open - 1
  table.insert(project.undo, description)
end
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
-- 42230: render with the most recent settings: custom bounds, master mix, WAV.
function reaper.Main_OnCommand(command, flag)
  assert(command == 42230, "emulation only renders")
  local render = project.render
  if render.RENDER_BOUNDSFLAG == 0 and render.RENDER_SETTINGS == 0 and render.RENDER_FORMAT == "evaw" then
    write_silent_wav(render.RENDER_FILE .. "/" .. render.RENDER_PATTERN .. ".wav",
      render.RENDER_ENDPOS - render.RENDER_STARTPOS)
  end
end

dofile(script_file)

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
    lines[#lines + 1] = string.format("track%d_item%d=%.10g|%.10g|%s", index, number, item.position, item.length, item.file)
  end
end
for _, name in ipairs({ "RENDER_SETTINGS", "RENDER_BOUNDSFLAG", "RENDER_FILE", "RENDER_PATTERN", "RENDER_FORMAT" }) do
  lines[#lines + 1] = name .. "=" .. tostring(project.render[name])
end
local handle = assert(io.open(after_file, "w"))
handle:write(table.concat(lines, "\n"), "\n")
handle:close()
