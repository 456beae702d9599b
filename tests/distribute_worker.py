"""Run main.py in a fresh process with N logical CPU devices (a helper of test_distribute, not a test module)."""
import sys

import tensorflow as tf

if __name__ == "__main__":
    devices, argv = int(sys.argv[1]), sys.argv[2:]
    if devices > 1:   # logical devices can only be configured before TensorFlow starts working
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    from tf_scripts.main import main

    sys.exit(main(argv))
