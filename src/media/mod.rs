//! Sans-IO media: RTP, G.711, DTMF, prompts, pacing.
