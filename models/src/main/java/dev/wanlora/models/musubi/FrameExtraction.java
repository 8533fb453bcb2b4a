package dev.wanlora.models.musubi;

import java.util.Locale;

/** How musubi cuts clips out of a video ({@code frame_extraction}); the rules are in {@link FrameWindows}. */
public enum FrameExtraction {
    HEAD, CHUNK, SLIDE, UNIFORM, FULL;

    /** The TOML spelling: "head", "chunk", ... */
    public String configName() { return name().toLowerCase(Locale.ROOT); }

    /** The mode for a TOML value, or null when it is none of the five. */
    static FrameExtraction fromConfig(String value) {
        for (FrameExtraction e : values()) {
            if (e.configName().equals(value)) return e;
        }
        return null;
    }
}
