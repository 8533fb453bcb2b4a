package dev.wanlora.pipeline.sample;

import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.tensor.DType;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/**
 * Test helper: writes a safetensors file's F32 tensors as {@code torch.save} writes a state dict (the layout of
 * sampling-tiny's t5.pth: a zip with root folder {@code name/}, stored entries {@code data.pkl} (protocol 2, a top-level
 * {@code collections.OrderedDict} of {@code torch._utils._rebuild_tensor_v2} over {@code FloatStorage}s),
 * {@code data/N}, {@code byteorder}, {@code version}), so that the .pth path can be tested where no torch is at hand.
 */
final class TorchZipWriter {

    private TorchZipWriter() { }

    static Path fromSafetensors(Path source, Path target, String root) {
        try (SafeTensors st = SafeTensors.open(source);
             ZipOutputStream zip = new ZipOutputStream(Files.newOutputStream(target))) {
            ByteArrayOutputStream pkl = new ByteArrayOutputStream();
            pkl.write(new byte[] {(byte) 0x80, 2});
            global(pkl, "collections", "OrderedDict");
            pkl.write(')');
            pkl.write('R');
            pkl.write('(');
            int n = 0;
            for (String key : st.keys()) {
                if (st.dtype(key) != DType.F32) throw new IllegalArgumentException(key + ": F32 only");
                long[] dims = st.shape(key).dims();
                long numel = st.shape(key).numElements();
                unicode(pkl, key);
                global(pkl, "torch._utils", "_rebuild_tensor_v2");
                pkl.write('(');
                pkl.write('(');
                unicode(pkl, "storage");
                global(pkl, "torch", "FloatStorage");
                unicode(pkl, Integer.toString(n));
                unicode(pkl, "cpu");
                integer(pkl, numel);
                pkl.write('t');
                pkl.write('Q');
                integer(pkl, 0);
                pkl.write('(');
                for (long d : dims) integer(pkl, d);
                pkl.write('t');
                pkl.write('(');
                long stride = 1;
                long[] strides = new long[dims.length];
                for (int i = dims.length - 1; i >= 0; i--) {
                    strides[i] = stride;
                    stride *= dims[i];
                }
                for (long s : strides) integer(pkl, s);
                pkl.write('t');
                pkl.write(0x89);
                global(pkl, "collections", "OrderedDict");
                pkl.write(')');
                pkl.write('R');
                pkl.write('t');
                pkl.write('R');
                n++;
            }
            pkl.write('u');
            pkl.write('.');
            stored(zip, root + "/data.pkl", pkl.toByteArray());
            n = 0;
            for (String key : st.keys()) stored(zip, root + "/data/" + n++, st.data(key).toArray(ValueLayout.JAVA_BYTE));
            stored(zip, root + "/byteorder", "little".getBytes(StandardCharsets.US_ASCII));
            stored(zip, root + "/version", "3\n".getBytes(StandardCharsets.US_ASCII));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return target;
    }

    private static void stored(ZipOutputStream zip, String name, byte[] bytes) throws IOException {
        ZipEntry e = new ZipEntry(name);
        e.setMethod(ZipEntry.STORED);
        e.setSize(bytes.length);
        e.setCompressedSize(bytes.length);
        CRC32 crc = new CRC32();
        crc.update(bytes);
        e.setCrc(crc.getValue());
        zip.putNextEntry(e);
        zip.write(bytes);
        zip.closeEntry();
    }

    private static void global(OutputStream o, String module, String name) throws IOException {
        o.write('c');
        o.write((module + "\n" + name + "\n").getBytes(StandardCharsets.US_ASCII));
    }

    private static void unicode(OutputStream o, String s) throws IOException {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        o.write('X');
        o.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(b.length).array());
        o.write(b);
    }

    private static void integer(OutputStream o, long v) throws IOException {
        o.write('J');
        o.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(Math.toIntExact(v)).array());
    }
}
