package dev.wanlora.models.text;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

class ClosestNameTest {

    @Test
    void editDistance() {
        assertEquals(1, ClosestName.editDistance("target_frame", "target_frames"));
        assertEquals(3, ClosestName.editDistance("kitten", "sitting"));
        assertEquals(0, ClosestName.editDistance("", ""));
    }

    @Test
    void ofSuggestsOnlyTypos() {
        assertEquals("network_dim", ClosestName.of("netwrk_dim", List.of("network_alpha", "network_dim")));
        // 3 edits: a typo of a 9-letter name (limit 9/3 = 3), not of a 6-letter one (limit max(2, 6/3) = 2)
        assertEquals("abcdefxyz", ClosestName.of("abcdefghi", List.of("abcdefxyz")));
        assertNull(ClosestName.of("abcdef", List.of("abcxyz")));
        assertNull(ClosestName.of("x", List.of()));
    }

    @Test
    void nearestHasNoLimitAndPrefersTheFirstOfEquals() {
        assertEquals("abcxyz", ClosestName.nearest("abcdef", List.of("abcxyz")));
        assertEquals("ac", ClosestName.nearest("ab", List.of("ac", "ad")));
        assertNull(ClosestName.nearest("x", List.of()));
    }
}
