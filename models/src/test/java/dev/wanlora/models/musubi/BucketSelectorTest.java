package dev.wanlora.models.musubi;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Bucket lists and choices, computed by hand from musubi's rule (bucket.py BucketSelector). */
class BucketSelectorTest {

    @Test
    void bucketListAt960x544() {
        // A = 960*544 = 522240, s = int(sqrt(A)) = 722, min = floor16(722/2 = 361) = 352.
        // w = 352, 368, ..., 736 (the last w < 722+16 = 738): 25 widths, each giving (w, h) and (h, w);
        // w = 720 gives h = floor16(522240 div 720 = 725) = 720, its own transpose, and w = 704 gives (704, 736) whose
        // transpose equals w = 736's (736, 704): 50 - 1 - 2 = 47 distinct buckets.
        BucketSelector s = new BucketSelector(new Resolution(960, 544), true, false);
        List<Resolution> b = s.buckets();
        assertEquals(47, b.size());
        assertEquals(new Resolution(352, 1472), b.get(0));      // 522240 div 352 = 1483 -> 1472
        assertEquals(new Resolution(960, 544), b.get(34));      // from w = 544: 522240 div 544 = 960
        assertEquals(new Resolution(1472, 352), b.get(46));
        assertEquals(new Resolution(720, 720), b.get(23));
    }

    @Test
    void closestAspectRatio() {
        BucketSelector s = new BucketSelector(new Resolution(960, 544), true, false);
        // 1920/1080 = 1.7778; 960/544 = 1.7647 (error 0.013) beats 976/528 = 1.8485 and 928/560 = 1.6571.
        assertEquals(new Resolution(960, 544), s.bucketFor(1920, 1080));
        assertEquals(new Resolution(544, 960), s.bucketFor(1080, 1920));
        assertEquals(new Resolution(720, 720), s.bucketFor(1024, 1024));      // square: exact
        // 768/416 = 1.8462; 976/528 = 1.8485 (error 0.0023) beats 960/544 (0.081).
        assertEquals(new Resolution(976, 528), s.bucketFor(768, 416));
        // 3000/1000 = 3; the widest bucket 1472/352 = 4.18, 1248/416 = 3.0 exactly.
        assertEquals(new Resolution(1248, 416), s.bucketFor(3000, 1000));
        // 640/480 = 1.3333; 832/624 = 1.3333 exactly.
        assertEquals(new Resolution(832, 624), s.bucketFor(640, 480));
    }

    @Test
    void noUpscaleKeepsSmallImages() {
        BucketSelector s = new BucketSelector(new Resolution(960, 544), true, true);
        assertEquals(new Resolution(640, 480), s.bucketFor(640, 480));      // area 307200 <= 522240: own size
        assertEquals(new Resolution(992, 496), s.bucketFor(1000, 500));     // 500000 <= A: floor16 of each side
        assertEquals(new Resolution(688, 688), s.bucketFor(700, 700));
        assertEquals(new Resolution(960, 544), s.bucketFor(1920, 1080));    // larger than A: normal bucket
    }

    @Test
    void withoutBucketingOneBucket() {
        BucketSelector s = new BucketSelector(new Resolution(768, 768), false, true);
        assertEquals(List.of(new Resolution(768, 768)), s.buckets());
        assertEquals(new Resolution(768, 768), s.bucketFor(1920, 1080));
        assertEquals(new Resolution(768, 768), s.bucketFor(100, 100));      // no_upscale is off without bucketing
    }

    @Test
    void smallestResolutionThatBuckets() {
        // 32x32: s = 32, min = 16; w < 32+16 takes 16 and 32 -> (16, 64), (64, 16), (32, 32).
        BucketSelector s = new BucketSelector(new Resolution(32, 32), true, false);
        assertEquals(List.of(new Resolution(16, 64), new Resolution(32, 32), new Resolution(64, 16)), s.buckets());
        // 31x32: s = 31, min = floor16(15) = 0; musubi divides by zero.
        assertThrows(IllegalArgumentException.class, () -> new BucketSelector(new Resolution(31, 32), true, false));
    }
}
