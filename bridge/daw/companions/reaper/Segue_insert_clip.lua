-- Segue: insert clip. Inserts the file named in Segue's job on a given track (or a new one) at a
-- given position, in one undo step, and puts the edit cursor back where it was.
-- Job:    file, track_index (0-based, -1 = new track at the end), track_name, [position_beats]
-- Result: track_index, position_seconds, length_seconds
local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local common = dofile(script_dir .. "Segue_common.lua")

local function find_item_at(track, position_seconds)
  for index = reaper.CountTrackMediaItems(track) - 1, 0, -1 do
    local item = reaper.GetTrackMediaItem(track, index)
    if math.abs(reaper.GetMediaItemInfo_Value(item, "D_POSITION") - position_seconds) < 0.0005 then
      return item
    end
  end
  return nil
end

local function insert(job)
  local file = job.file or ""
  if file == "" then error("the job names no file to insert", 0) end
  if not reaper.file_exists(file) then error("no file at " .. file, 0) end
  local track_index = math.tointeger(tonumber(job.track_index or "-1")) or -1
  local position_seconds = reaper.GetCursorPosition()
  if job.position_beats and job.position_beats ~= "" then
    position_seconds = reaper.TimeMap2_QNToTime(0, tonumber(job.position_beats))
  end

  local track
  if track_index < 0 then
    track_index = reaper.CountTracks(0)
    reaper.InsertTrackAtIndex(track_index, true)
    track = reaper.GetTrack(0, track_index)
    reaper.GetSetMediaTrackInfo_String(track, "P_NAME", job.track_name or "Segue", true)
  else
    track = reaper.GetTrack(0, track_index)
    if not track then error("REAPER has no track " .. (track_index + 1), 0) end
  end

  local items_before = reaper.CountTrackMediaItems(track)
  reaper.SetEditCurPos(position_seconds, false, false)
  -- 512: the high word is the (0-based) track to insert on.
  reaper.InsertMedia(file, 512 | (track_index << 16))
  local item = find_item_at(track, position_seconds)
  if reaper.CountTrackMediaItems(track) ~= items_before + 1 or not item then
    error("REAPER could not insert " .. file .. " (not an audio file REAPER reads?)", 0)
  end
  return {
    track_index = track_index,
    position_seconds = position_seconds,
    length_seconds = reaper.GetMediaItemInfo_Value(item, "D_LENGTH"),
    info_time_seconds = position_seconds,
    message = "inserted on track " .. (track_index + 1),
  }
end

common.run("insert", function(job)
  local cursor_seconds = reaper.GetCursorPosition()
  reaper.PreventUIRefresh(1)
  reaper.Undo_BeginBlock()
  local ok, result = pcall(insert, job)
  reaper.SetEditCurPos(cursor_seconds, false, false)
  reaper.Undo_EndBlock("Segue: insert clip", -1)
  reaper.PreventUIRefresh(-1)
  reaper.UpdateArrange()
  if not ok then error(result, 0) end
  return result
end)
