package dev.wanlora.engine.io;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The .pth reader on real torch.save files (sampling-tiny's t5.pth, F32, and t5_bf16.pth, both written by torch
 * 2.13) against the same state dict in t5.safetensors, and on hostile or damaged files, each of which must give one
 * PthException line naming the file.
 */
class PthFileTest {

    @TempDir
    Path tmp;

    @Test
    void realTorchFilesMatchTheSafetensorsCopy() {
        Path dir = Golden.dir("sampling-tiny");
        try (SafeTensors st = SafeTensors.open(dir.resolve("t5.safetensors"));
             PthFile f32 = PthFile.open(dir.resolve("t5.pth"));
             PthFile bf16 = PthFile.open(dir.resolve("t5_bf16.pth"))) {
            assertEquals(st.keys(), f32.keys()); // safetensors sorts its keys; the .pth keeps state-dict order
            assertEquals("token_embedding.weight", f32.keys().iterator().next());
            assertEquals(st.keys(), bf16.keys());
            for (String k : st.keys()) {
                assertEquals(st.shape(k), f32.shape(k), k);
                assertEquals(DType.F32, f32.dtype(k), k);
                assertEquals(DType.BF16, bf16.dtype(k), k);
                // The same bytes, not merely equal values: the slice is the storage as torch wrote it.
                assertEquals(-1, st.data(k).mismatch(f32.data(k)), k);
                // Every golden weight is bf16-representable (README), so the bf16 file widens to the same floats.
                assertArrayEquals(st.floats(k), bf16.floats(k), k);
            }
            assertEquals(22, f32.keys().size());
        }
    }

    @Test
    void dataIsAZeroCopySliceOfTheMap() {
        try (PthFile f = PthFile.open(Golden.dir("sampling-tiny").resolve("t5.pth"))) {
            var a = f.data("norm.weight");
            var b = f.data("norm.weight");
            assertEquals(a.address(), b.address(), "two calls give views of one mapped range, not copies");
            assertTrue(a.isMapped());
            assertTrue(a.isReadOnly());
        }
    }

    @Test
    void pickleCallingAnotherGlobalIsRefused() throws IOException {
        // protocol 2: GLOBAL os.system, BINUNICODE 'ls', TUPLE1, REDUCE, STOP — what a malicious .pth carries.
        ByteArrayOutputStream p = new ByteArrayOutputStream();
        p.write(new byte[] {(byte) 0x80, 2});
        p.write("cos\nsystem\n".getBytes(StandardCharsets.US_ASCII));
        p.write(new byte[] {'X', 2, 0, 0, 0, 'l', 's', (byte) 0x85, 'R', '.'});
        Path f = zip("evil.pth", "evil/data.pkl", p.toByteArray());
        String msg = error(f);
        assertTrue(msg.contains("calls os.system, which a state dict does not need; refused"), msg);
    }

    @Test
    void reduceOfAnAllowedGlobalOtherThanTheRebuildersIsRefused() throws IOException {
        // torch.FloatStorage is an allowed name (it appears inside persistent ids) but must never be called.
        byte[] p = {(byte) 0x80, 2, 'c', 't', 'o', 'r', 'c', 'h', '\n', 'F', 'l', 'o', 'a', 't', 'S', 't', 'o', 'r', 'a',
                'g', 'e', '\n', ')', 'R', '.'};
        String msg = error(zip("call.pth", "call/data.pkl", p));
        assertTrue(msg.contains("calls torch.FloatStorage as a function"), msg);
    }

    @Test
    void truncatedAndCorruptFilesGiveOneLine() throws IOException {
        byte[] real = Files.readAllBytes(Golden.dir("sampling-tiny").resolve("t5.pth"));
        String cut = error(Files.write(tmp.resolve("cut.pth"), Arrays.copyOf(real, real.length / 2)));
        assertTrue(cut.contains("no zip end-of-central-directory record"), cut);
        String empty = error(Files.write(tmp.resolve("empty.pth"), new byte[0]));
        assertTrue(empty.contains("not a zip archive"), empty);
        String text = error(Files.write(tmp.resolve("text.pth"), "hello, not a checkpoint at all".getBytes(StandardCharsets.US_ASCII)));
        assertTrue(text.contains("not a zip archive"), text);
        // A pickle cut in the middle.
        byte[] pickle = Arrays.copyOf(readEntry(Golden.dir("sampling-tiny").resolve("t5.pth")), 300);
        String mid = error(zip("mid.pth", "mid/data.pkl", pickle));
        assertTrue(mid.contains("data.pkl ends inside the pickle"), mid);
        // A zip without data.pkl.
        String noPickle = error(zip("nopkl.pth", "x/other", new byte[] {1}));
        assertTrue(noPickle.contains("no data.pkl"), noPickle);
        // A pickle whose storages are missing from the zip.
        String noStorage = error(zip("nostorage.pth", "t5/data.pkl", readEntry(Golden.dir("sampling-tiny").resolve("t5.pth"))));
        assertTrue(noStorage.contains("which the zip does not hold"), noStorage);
    }

    /**
     * The 11 GB umT5 checkpoint is a ZIP64 archive (offsets past 4 GiB). Rewrites t5.pth with every size and offset
     * moved into ZIP64 extra fields, a ZIP64 end record and locator (APPNOTE.TXT 4.3.14, 4.3.15, 4.5.3), as a writer
     * does past 4 GiB, and reads the same tensors back.
     */
    @Test
    void zip64RecordsAreRead() throws IOException {
        Path golden = Golden.dir("sampling-tiny").resolve("t5.pth");
        Path z64 = tmp.resolve("t5_zip64.pth");
        java.nio.ByteBuffer out = java.nio.ByteBuffer.allocate((int) Files.size(golden) * 2).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        List<String> names = new ArrayList<>();
        List<Long> offsets = new ArrayList<>(), sizes = new ArrayList<>(), crcs = new ArrayList<>();
        try (var zip = new java.util.zip.ZipFile(golden.toFile())) {
            for (var e : java.util.Collections.list(zip.entries())) {
                byte[] data = zip.getInputStream(e).readAllBytes(), name = e.getName().getBytes(StandardCharsets.UTF_8);
                names.add(e.getName());
                offsets.add((long) out.position());
                sizes.add((long) data.length);
                crcs.add(e.getCrc());
                out.putInt(0x04034b50).putShort((short) 45).putShort((short) 0).putShort((short) 0).putInt(0)
                        .putInt((int) e.getCrc()).putInt(data.length).putInt(data.length)
                        .putShort((short) name.length).putShort((short) 0).put(name).put(data);
            }
        }
        long cdStart = out.position();
        for (int i = 0; i < names.size(); i++) {
            byte[] name = names.get(i).getBytes(StandardCharsets.UTF_8);
            out.putInt(0x02014b50).putShort((short) 45).putShort((short) 45).putShort((short) 0).putShort((short) 0)
                    .putInt(0).putInt((int) (long) crcs.get(i)).putInt(-1).putInt(-1)
                    .putShort((short) name.length).putShort((short) 28).putShort((short) 0).putShort((short) 0)
                    .putShort((short) 0).putInt(0).putInt(-1).put(name)
                    .putShort((short) 1).putShort((short) 24).putLong(sizes.get(i)).putLong(sizes.get(i)).putLong(offsets.get(i));
        }
        long cdEnd = out.position();
        out.putInt(0x06064b50).putLong(44).putShort((short) 45).putShort((short) 45).putInt(0).putInt(0)
                .putLong(names.size()).putLong(names.size()).putLong(cdEnd - cdStart).putLong(cdStart);
        out.putInt(0x07064b50).putInt(0).putLong(cdEnd).putInt(1);
        out.putInt(0x06054b50).putShort((short) 0).putShort((short) 0).putShort((short) -1).putShort((short) -1)
                .putInt(-1).putInt(-1).putShort((short) 0);
        Files.write(z64, Arrays.copyOf(out.array(), out.position()));
        try (var check = new java.util.zip.ZipFile(z64.toFile())) { // the JDK's reader agrees that it is a valid ZIP64
            assertEquals(names.size(), check.size());
        }
        try (PthFile a = PthFile.open(golden); PthFile b = PthFile.open(z64)) {
            assertEquals(a.keys(), b.keys());
            for (String k : a.keys()) assertEquals(-1, a.data(k).mismatch(b.data(k)), k);
        }
    }

    @Test
    void missingFile() {
        String msg = error(tmp.resolve("absent.pth"));
        assertTrue(msg.contains("file not found"), msg);
    }

    private static byte[] readEntry(Path pth) throws IOException {
        try (var z = new java.util.zip.ZipFile(pth.toFile())) {
            return z.getInputStream(z.getEntry("t5/data.pkl")).readAllBytes();
        }
    }

    /** A zip with one STORED entry, as torch writes them. */
    private Path zip(String name, String entry, byte[] content) throws IOException {
        Path f = tmp.resolve(name);
        try (ZipOutputStream z = new ZipOutputStream(Files.newOutputStream(f))) {
            ZipEntry e = new ZipEntry(entry);
            e.setMethod(ZipEntry.STORED);
            e.setSize(content.length);
            CRC32 crc = new CRC32();
            crc.update(content);
            e.setCrc(crc.getValue());
            z.putNextEntry(e);
            z.write(content);
            z.closeEntry();
        }
        return f;
    }

    private static String error(Path f) {
        PthException e = assertThrows(PthException.class, () -> PthFile.open(f).close());
        String msg = e.getMessage();
        assertFalse(msg.contains("\n"), msg);
        assertTrue(msg.startsWith(f + ": "), msg);
        assertTrue(msg.contains("hint: "), msg);
        System.out.println("refused: " + msg);
        return msg;
    }
}
