"""The Realtime (RTC) API: rooms joined over WebRTC, signalling events as RTC user messages.

Pure, sans-I/O modules (coze-protocol.md section 3):

* :mod:`.objects`: the data objects of the signalling events (``session.update`` ...);
* :mod:`.events`: the 10 upstream and 21 downstream events and their decode tables;
* :mod:`.rooms`: the create-room REST request and response (``POST /v1/audio/rooms``);
* :mod:`.session`: :class:`~voicegw.realtime.session.RealtimeSession`, the client's state
  machine for one room.

The media and message transport is behind :mod:`.transport` (an interface; the aiortc
implementation lives in :mod:`voicegw.io.webrtc`).
"""
