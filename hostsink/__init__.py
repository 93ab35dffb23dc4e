"""hostsink: the wave sink (DirectMusic IDirectMusicSynthSink side); knows nothing of MIDI.

A *source* (the synth) has ``sample_rate`` and ``render(n_frames, position)`` returning a
float32 (n_frames, 2) array, optionally ``committed_frames``.  A :class:`WaveSink` pulls
it on a clock into a :class:`RingBuffer` that an output drains.
"""
from .clock import (REF_PER_SEC, Clock, ClockInactiveError, DeviceClock, LatencyClock,
                    ManualClock, MonotonicClock, SampleTimeBase, frames_to_ref, ref_to_frames)
from .outputs import (NullOutput, SoundDeviceOutput, WavFileOutput, find_output_device,
                      read_wav, reinitialize_portaudio, to_pcm16, write_wav,
                      initialize_portaudio, terminate_portaudio)
from .ringbuffer import RingBuffer
from .sink import SinkActiveError, SinkNotConfiguredError, SinkStats, WaveSink, play

__all__ = [
    "REF_PER_SEC", "Clock", "ClockInactiveError", "DeviceClock", "LatencyClock", "ManualClock",
    "MonotonicClock", "SampleTimeBase", "frames_to_ref", "ref_to_frames",
    "NullOutput", "SoundDeviceOutput", "WavFileOutput", "find_output_device", "read_wav",
    "reinitialize_portaudio", "initialize_portaudio", "terminate_portaudio", "to_pcm16",
    "write_wav",
    "RingBuffer", "SinkActiveError", "SinkNotConfiguredError", "SinkStats", "WaveSink", "play",
]
