-- Segue: insert clip. Inserts the file named in Segue's job on a given track (or a new one) at a
-- given position, as one undo point named "Segue: insert clip", and puts the edit cursor back.
-- Job:    file, track_index (0-based, -1 = new track at the end), track_name, [position_beats]
-- Result: track_index, position_seconds, length_seconds
--
-- Success is the item REAPER added for the file, found among the items the track did not have
-- before. The item count is no measure: with "trim content behind media items" on, a clip dropped
-- inside an item splits it, and the count goes up by two.
local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local common = dofile(script_dir .. "Segue_common.lua")

-- 512: the high word of InsertMedia's mode is the (0-based) track to insert on (ReaScript docs).
local INSERT_ON_TRACK = 512
local SAME_POSITION_SECONDS = 0.0005

local function items_of(track)
  local items = {}
  for index = 0, reaper.CountTrackMediaItems(track) - 1 do
    items[reaper.GetTrackMediaItem(track, index)] = true
  end
  return items
end

local function source_file(item)
  local take = reaper.GetActiveTake(item)
  if not take then return nil end
  return reaper.GetMediaSourceFileName(reaper.GetMediaItemTake_Source(take), "")
end

-- The item InsertMedia added at `position_seconds`: one the track did not have, starting there. The
-- tail of an item split by "trim content behind" is new too, but starts where the clip ends. Its
-- source is `file`, unless REAPER copied the file into the project folder (a preference): then
-- any new item at the position is the clip.
local function inserted_item(track, items_before, file, position_seconds)
  local found = nil
  for index = 0, reaper.CountTrackMediaItems(track) - 1 do
    local item = reaper.GetTrackMediaItem(track, index)
    if not items_before[item] and
        math.abs(reaper.GetMediaItemInfo_Value(item, "D_POSITION") - position_seconds) < SAME_POSITION_SECONDS then
      if source_file(item) == file then return item end
      found = found or item
    end
  end
  return found
end

-- Everything that can be checked without changing the project; an error here leaves no trace.
local function plan(job)
  local file = job.file or ""
  if file == "" then error("the job names no file to insert", 0) end
  if not reaper.file_exists(file) then error("no file at " .. file, 0) end
  local source = reaper.PCM_Source_CreateFromFile(file)
  local length_seconds = source and reaper.GetMediaSourceLength(source) or 0
  if source then reaper.PCM_Source_Destroy(source) end
  if length_seconds <= 0 then error("REAPER could not insert " .. file .. " (not an audio file REAPER reads?)", 0) end
  local track_index = math.tointeger(tonumber(job.track_index or "-1")) or -1
  if track_index >= 0 and not reaper.GetTrack(0, track_index) then
    error("REAPER has no track " .. (track_index + 1) .. "; the project has " .. reaper.CountTracks(0), 0)
  end
  local position_seconds = reaper.GetCursorPosition()
  if job.position_beats and job.position_beats ~= "" then
    position_seconds = reaper.TimeMap2_QNToTime(0, tonumber(job.position_beats))
  end
  return { file = file, track_index = track_index, track_name = job.track_name, position_seconds = position_seconds }
end

-- The change itself, inside the undo block. A track it created is removed again if nothing lands on it.
local function insert(clip)
  local track_index, track, created = clip.track_index, nil, false
  if track_index < 0 then
    track_index = reaper.CountTracks(0)
    reaper.InsertTrackAtIndex(track_index, true)
    track, created = reaper.GetTrack(0, track_index), true
    reaper.GetSetMediaTrackInfo_String(track, "P_NAME", clip.track_name or "Segue", true)
  else
    track = reaper.GetTrack(0, track_index)
  end

  local items_before = items_of(track)
  reaper.SetEditCurPos(clip.position_seconds, false, false)
  local inserted = reaper.InsertMedia(clip.file, INSERT_ON_TRACK | (track_index << 16))
  local item = inserted_item(track, items_before, clip.file, clip.position_seconds)
  if not item then
    if created then reaper.DeleteTrack(track) end
    local why = inserted == 0 and "" or " (it reported success but no new item holds the file)"
    error("REAPER could not insert " .. clip.file .. why, 0)
  end
  return {
    track_index = track_index,
    position_seconds = clip.position_seconds,
    length_seconds = reaper.GetMediaItemInfo_Value(item, "D_LENGTH"),
    info_time_seconds = clip.position_seconds,
    message = "inserted on track " .. (track_index + 1),
  }
end

common.run("insert", function(job)
  local clip = plan(job)
  local cursor_seconds = reaper.GetCursorPosition()
  reaper.PreventUIRefresh(1)
  reaper.Undo_BeginBlock()
  local ok, result = pcall(insert, clip)
  reaper.SetEditCurPos(cursor_seconds, false, false)
  -- An undo block always ends in a point; after a refusal nothing is left changed, and the name says so.
  reaper.Undo_EndBlock(ok and "Segue: insert clip" or "Segue: insert clip failed (nothing changed)", -1)
  reaper.PreventUIRefresh(-1)
  reaper.UpdateArrange()
  if not ok then error(result, 0) end
  return result
end)
