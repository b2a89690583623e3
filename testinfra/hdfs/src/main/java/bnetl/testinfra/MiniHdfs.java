package bnetl.testinfra;

import java.io.BufferedReader;
import java.io.File;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.hdfs.MiniDFSNNTopology;

/**
 * Starts a MiniDFSCluster for bnetl's tests: one NameNode, or two behind the name service
 * {@code bnetl-ns} ({@code --ha}), and {@code --datanodes N} DataNodes. It writes the
 * {@code core-site.xml} and {@code hdfs-site.xml} a client needs to {@code --conf-dir}, prints
 * {@code READY <url>} on stdout, then answers commands read from stdin, one line each, with
 * {@code OK} or {@code ERR <reason>} as the last line:
 * <ul>
 *   <li>{@code ls PATH}: every entry under PATH, recursively, through Hadoop's FileSystem API,
 *       one line each: {@code <permissions> <owner> <group> <length> <path>} (nothing if absent);
 *   <li>{@code kill-datanode I}: stops DataNode I;
 *   <li>{@code failover}: kills the active NameNode and makes the other one active.
 * </ul>
 * At the end of stdin it shuts the cluster down and exits.
 */
public final class MiniHdfs {
    private static final String NAMESERVICE = "bnetl-ns";

    public static void main(String[] args) throws Exception {
        // Our protocol owns stdout; anything a library prints there goes to stderr instead.
        PrintStream out = new PrintStream(new FileOutputStream(java.io.FileDescriptor.out), true,
                StandardCharsets.UTF_8);
        System.setOut(System.err);

        String baseDir = null;
        String confDir = null;
        int datanodes = 3;
        boolean ha = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--base-dir" -> baseDir = args[++i];
                case "--conf-dir" -> confDir = args[++i];
                case "--datanodes" -> datanodes = Integer.parseInt(args[++i]);
                case "--ha" -> ha = true;
                default -> throw new IllegalArgumentException("unknown option " + args[i]
                        + "; usage: MiniHdfs --base-dir DIR --conf-dir DIR [--datanodes N] [--ha]");
            }
        }
        if (baseDir == null || confDir == null) {
            throw new IllegalArgumentException("--base-dir and --conf-dir are required");
        }

        Configuration conf = new HdfsConfiguration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, baseDir);
        conf.setBoolean("dfs.permissions.enabled", true);
        conf.set("fs.permissions.umask-mode", "022");
        conf.setInt("dfs.replication", Math.min(3, datanodes));
        // Notice a dead DataNode within seconds.
        conf.setLong("dfs.heartbeat.interval", 1);
        conf.setInt("dfs.namenode.heartbeat.recheck-interval", 2000);
        MiniDFSCluster.Builder builder = new MiniDFSCluster.Builder(conf)
                .numDataNodes(datanodes)
                .format(true);
        if (ha) {
            builder.nnTopology(new MiniDFSNNTopology().addNameservice(
                    new MiniDFSNNTopology.NSConf(NAMESERVICE)
                            .addNN(new MiniDFSNNTopology.NNConf("nn0"))
                            .addNN(new MiniDFSNNTopology.NNConf("nn1"))));
        }
        MiniDFSCluster cluster = builder.build();
        if (ha) {
            cluster.transitionToActive(0);
        }
        cluster.waitActive();

        String url = ha ? "hdfs://" + NAMESERVICE
                : "hdfs://127.0.0.1:" + cluster.getNameNodePort();
        Configuration client = clientConf(cluster, url, ha);
        new File(confDir).mkdirs();
        try (OutputStream core = new FileOutputStream(new File(confDir, "core-site.xml"))) {
            Configuration site = new Configuration(false);
            site.set("fs.defaultFS", url);
            site.writeXml(core);
        }
        try (OutputStream hdfs = new FileOutputStream(new File(confDir, "hdfs-site.xml"))) {
            Configuration site = new Configuration(false);
            for (var entry : client) {
                if (entry.getKey().startsWith("dfs.")) {
                    site.set(entry.getKey(), entry.getValue());
                }
            }
            site.writeXml(hdfs);
        }
        FileSystem fs = FileSystem.newInstance(URI.create(url), client);
        out.println("READY " + url);

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line; (line = in.readLine()) != null; ) {
            String[] words = line.trim().split("\\s+", 2);
            try {
                switch (words[0]) {
                    case "ls" -> {
                        Path path = new Path(words[1]);
                        if (fs.exists(path)) {
                            list(fs, fs.getFileStatus(path), out);
                        }
                        out.println("OK");
                    }
                    case "kill-datanode" -> {
                        cluster.stopDataNode(Integer.parseInt(words[1]));
                        out.println("OK");
                    }
                    case "failover" -> {
                        int active = cluster.getNameNode(0).isActiveState() ? 0 : 1;
                        cluster.shutdownNameNode(active);
                        cluster.transitionToActive(1 - active);
                        out.println("OK active nn" + (1 - active));
                    }
                    default -> out.println("ERR unknown command " + words[0]);
                }
            } catch (Exception e) {
                out.println("ERR " + e.toString().replace('\n', ' '));
            }
        }
        fs.close();
        cluster.shutdown();
        System.exit(0);
    }

    /** The configuration a client of this cluster needs (the HA keys for the name service). */
    private static Configuration clientConf(MiniDFSCluster cluster, String url, boolean ha) {
        Configuration client = new Configuration(false);
        client.set("fs.defaultFS", url);
        if (ha) {
            client.set("dfs.nameservices", NAMESERVICE);
            client.set("dfs.ha.namenodes." + NAMESERVICE, "nn0,nn1");
            for (int i = 0; i < 2; i++) {
                client.set("dfs.namenode.rpc-address." + NAMESERVICE + ".nn" + i,
                        "127.0.0.1:" + cluster.getNameNode(i).getNameNodeAddress().getPort());
            }
            client.set("dfs.client.failover.proxy.provider." + NAMESERVICE,
                    "org.apache.hadoop.hdfs.server.namenode.ha.ConfiguredFailoverProxyProvider");
        }
        return client;
    }

    private static void list(FileSystem fs, FileStatus status, PrintStream out) throws Exception {
        out.println((status.isDirectory() ? "d" : "-") + status.getPermission() + " "
                + status.getOwner() + " " + status.getGroup() + " " + status.getLen() + " "
                + status.getPath().toUri().getPath());
        if (status.isDirectory()) {
            for (FileStatus child : fs.listStatus(status.getPath())) {
                list(fs, child, out);
            }
        }
    }
}
