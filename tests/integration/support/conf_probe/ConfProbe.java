// Test probe run inside the images: finds and reads the Spark properties file the way
// Spark's launcher does (org.apache.spark.launcher.AbstractCommandBuilder: getConfDir() is
// $SPARK_CONF_DIR, else $SPARK_HOME/conf; loadPropertiesFile() reads spark-defaults.conf
// there as UTF-8 java.util.Properties and trims each value), then prints what it found:
//
//   conf_dir=<directory>
//   properties_file=<path>|null      (null: no file there, Spark runs without defaults)
//   <key>=<value>                    (every property, sorted by key)
//
// Compiled with `javac --release 8` by the tests, so it runs on every JRE the images use.
import java.io.File;
import java.io.FileInputStream;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.TreeSet;

public final class ConfProbe {
    public static void main(String[] args) throws Exception {
        String confDir = System.getenv("SPARK_CONF_DIR");
        if (confDir == null || confDir.isEmpty()) {
            String sparkHome = System.getenv("SPARK_HOME");
            if (sparkHome == null || sparkHome.isEmpty()) {
                System.err.println("ConfProbe: neither SPARK_CONF_DIR nor SPARK_HOME is set");
                System.exit(3);
            }
            confDir = sparkHome + File.separator + "conf";
        }
        System.out.println("conf_dir=" + confDir);
        File file = new File(confDir, "spark-defaults.conf");
        if (!file.isFile()) {
            System.out.println("properties_file=null");
            return;
        }
        System.out.println("properties_file=" + file.getPath());
        Properties properties = new Properties();
        try (Reader reader = new InputStreamReader(new FileInputStream(file), StandardCharsets.UTF_8)) {
            properties.load(reader);
        }
        for (String key : new TreeSet<>(properties.stringPropertyNames())) {
            System.out.println(key + "=" + properties.getProperty(key).trim());
        }
    }
}
