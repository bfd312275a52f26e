"""What the system knows about media: probing files (``probe``), the preset catalog
(``presets``), running ffmpeg on a preset (``transcoder``), MP4 box surgery
(``isobmff``) and the stamps that make outputs self-describing (``stamps``)."""
