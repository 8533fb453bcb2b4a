package dev.wanlora.engine.optim;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Tensor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The optimizer state file shared by every {@link Optimizer}: a safetensors file with one tensor per state buffer
 * (F32 moments, U8 codes plus F32 absmax, Prodigy's scalars, Adafactor's factors) and {@code __metadata__["wanlora.optimizer"]} holding the
 * settings and the last step as JSON:
 * {@code {"format":1,"optimizer":"<python class>","betas":[b1,b2],"eps":e,"weight_decay":wd,"min_8bit_size":n,
 * "block_size":256,"last_step":k}}, plus {@code "settings"} (every other setting as text) for Prodigy and Adafactor.
 */
final class OptimizerStateFile {
    private OptimizerStateFile() {}

    static final String METADATA_KEY = "wanlora.optimizer";
    private static final int FORMAT = 1;
    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** One state buffer: its key in the file and the tensor holding it. */
    record Slot(String key, Tensor tensor) {}

    static void write(Path file, Backend backend, OptimizerConfig config, long lastStep, List<Slot> slots) {
        List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
        for (Slot s : slots) {
            float[] values = backend.toFloats(s.tensor());
            if (s.tensor().dtype() == DType.U8) {
                byte[] codes = new byte[values.length];
                for (int i = 0; i < codes.length; i++) codes[i] = (byte) (int) values[i];
                entries.add(SafeTensorsWriter.Entry.ofBytes(s.key(), DType.U8, s.tensor().shape(), codes));
            } else {
                entries.add(SafeTensorsWriter.Entry.ofFloats(s.key(), DType.F32, s.tensor().shape(), values));
            }
        }
        SafeTensorsWriter.write(file, entries, Map.of(METADATA_KEY, settings(config, lastStep).toString()));
    }

    /** Copies every slot's tensor from {@code file} after checking the settings; returns the saved last step. */
    static long read(Path file, Backend backend, OptimizerConfig config, List<Slot> slots) {
        try (SafeTensors st = SafeTensors.open(file)) {
            String json = st.metadata().get(METADATA_KEY);
            if (json == null) {
                throw new IllegalArgumentException(file + ": no '" + METADATA_KEY + "' metadata; expected an optimizer state"
                        + " written by wanlora's --save_state. hint: point --resume at a wanlora state folder");
            }
            JsonNode saved;
            try {
                saved = JSON.readTree(json);
            } catch (JsonProcessingException e) {
                throw new IllegalArgumentException(file + ": '" + METADATA_KEY + "' metadata is not JSON; got " + json);
            }
            ObjectNode expected = settings(config, 0);
            for (String field : List.of("format", "optimizer", "betas", "eps", "weight_decay", "min_8bit_size", "block_size",
                    "settings")) {
                if (expected.has(field) && !expected.get(field).equals(saved.get(field))) {
                    throw new IllegalArgumentException(file + ": optimizer state was saved with " + field + "="
                            + saved.get(field) + ", but this run has " + field + "=" + expected.get(field)
                            + "; expected the same optimizer settings when resuming. hint: resume with the original"
                            + " --optimizer_type/--optimizer_args, or start without --resume");
                }
            }
            Set<String> expectedKeys = new HashSet<>();
            for (Slot s : slots) {
                expectedKeys.add(s.key());
                if (!st.contains(s.key())) {
                    throw new IllegalArgumentException(file + ": optimizer state has no tensor '" + s.key() + "'; expected"
                            + " the state of the same LoRA. hint: resume with the same --network_dim and modules");
                }
                var info = st.info(s.key());
                if (info.dtype() != s.tensor().dtype() || !info.shape().equals(s.tensor().shape())) {
                    throw new IllegalArgumentException(file + ": optimizer state '" + s.key() + "' is " + info.dtype()
                            + info.shape() + ", expected " + s.tensor().dtype() + s.tensor().shape()
                            + ". hint: resume with the same --network_dim and modules");
                }
                if (info.dtype() == DType.F32) checkValues(file, s.key(), st.floats(s.key()));
                try (Tensor loaded = backend.fromBytes(info.dtype(), info.shape(), st.data(s.key()))) {
                    backend.copy(s.tensor(), loaded);
                }
            }
            for (String key : st.keys()) {
                if (!expectedKeys.contains(key)) {
                    throw new IllegalArgumentException(file + ": optimizer state has an extra tensor '" + key + "' ("
                            + st.keys().size() + " tensors, expected " + expectedKeys.size()
                            + "). hint: resume with the same --network_dim and modules");
                }
            }
            JsonNode lastStep = saved.get("last_step");
            if (lastStep == null || !lastStep.canConvertToLong() || !lastStep.isIntegralNumber() || lastStep.longValue() < 0) {
                throw new IllegalArgumentException(file + ": '" + METADATA_KEY + "' metadata has last_step " + lastStep
                        + "; expected a step count >= 0. hint: the state folder is damaged, resume from another one");
            }
            return lastStep.longValue();
        }
    }

    /**
     * A moment or scale that is NaN or infinite (or a negative second moment or absmax, which the update takes the
     * square root of or scales by) would make every later step non-finite: such a state is damaged.
     */
    private static void checkValues(Path file, String key, float[] values) {
        boolean isNonNegative = key.endsWith(".exp_avg_sq") || key.contains(".absmax");
        for (int i = 0; i < values.length; i++) {
            float v = values[i];
            if (!Float.isFinite(v) || (isNonNegative && v < 0)) {
                throw new IllegalArgumentException(file + ": optimizer state '" + key + "' holds " + v + " at element " + i
                        + "; expected finite values" + (isNonNegative ? " >= 0" : "") + ". hint: the state folder is"
                        + " damaged (or saved after a non-finite step), resume from an earlier one");
            }
        }
    }

    private static ObjectNode settings(OptimizerConfig config, long lastStep) {
        ObjectNode n = JSON.createObjectNode();
        n.put("format", FORMAT);
        n.put("optimizer", config.kind().pythonClass());
        // floats widened to double so the JSON round trip compares equal (Jackson reads numbers back as doubles)
        n.putArray("betas").add((double) config.beta1()).add((double) config.beta2());
        n.put("eps", (double) config.eps());
        n.put("weight_decay", (double) config.weightDecay());
        n.put("min_8bit_size", config.min8bitSize());
        n.put("block_size", AdamW8bit.BLOCK_SIZE);
        if (!config.resumeSettings().isEmpty()) n.put("settings", config.resumeSettings()); // Prodigy, Adafactor
        n.put("last_step", lastStep);
        return n;
    }
}
