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
import org.apache.hadoop.fs.permission.FsPermission;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.hdfs.MiniDFSNNTopology;
import org.apache.hadoop.minikdc.MiniKdc;
import org.apache.hadoop.security.UserGroupInformation;

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
 *
 * <p>With {@code --kerberos} it also starts a KDC (Hadoop's MiniKdc, realm {@code EXAMPLE.COM}),
 * runs the NameNode and DataNodes as {@code hdfs/localhost} with Kerberos authentication and block
 * access tokens, and writes for clients to {@code --conf-dir}: {@code krb5.conf} (an MIT Kerberos
 * configuration naming the KDC) and {@code alice.keytab} (the user {@code alice@EXAMPLE.COM}).
 * {@code /tmp} is created world-writable and sticky, as on a real cluster, so that alice can write
 * there. The URL then names the NameNode as {@code localhost}, the host of its principal.
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
        boolean kerberos = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--base-dir" -> baseDir = args[++i];
                case "--conf-dir" -> confDir = args[++i];
                case "--datanodes" -> datanodes = Integer.parseInt(args[++i]);
                case "--ha" -> ha = true;
                case "--kerberos" -> kerberos = true;
                default -> throw new IllegalArgumentException("unknown option " + args[i]
                        + "; usage: MiniHdfs --base-dir DIR --conf-dir DIR [--datanodes N] [--ha]"
                        + " [--kerberos]");
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
        // Notice a dead DataNode within seconds: heartbeats every second, declared dead after
        // 2 rechecks + 10 heartbeats (14 s; 14.5 s measured here).
        conf.setLong("dfs.heartbeat.interval", 1);
        conf.setInt("dfs.namenode.heartbeat.recheck-interval", 2000);
        // Until then, a DataNode silent for 3 s (3 heartbeats: Hadoop raises a shorter interval
        // to that) is stale: left out of new write pipelines and put last in read orders, as
        // clusters serving HBase are set up. Without it the NameNode keeps handing out the dead
        // DataNode for those 14 s, and hdfs-native, unlike Hadoop's Java client, does not ask
        // for a block without it.
        conf.setLong("dfs.namenode.stale.datanode.interval", 3000);
        conf.setBoolean("dfs.namenode.avoid.write.stale.datanode", true);
        conf.setBoolean("dfs.namenode.avoid.read.stale.datanode", true);
        new File(confDir).mkdirs();
        Configuration security = new Configuration(false);
        MiniKdc kdc = null;
        if (kerberos) {
            kdc = startKdc(new File(baseDir, "kdc"), new File(confDir), security);
            for (var entry : security) {
                conf.set(entry.getKey(), entry.getValue());
            }
            UserGroupInformation.setConfiguration(conf);
            UserGroupInformation.loginUserFromKeytab(conf.get("dfs.namenode.kerberos.principal"),
                    conf.get("dfs.namenode.keytab.file"));
        }
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

        String host = kerberos ? "localhost" : "127.0.0.1";
        String url = ha ? "hdfs://" + NAMESERVICE : "hdfs://" + host + ":" + cluster.getNameNodePort();
        Configuration client = clientConf(cluster, url, ha);
        for (var entry : security) {
            if (!entry.getKey().endsWith(".keytab.file") && !entry.getKey().endsWith(".keytab")) {
                client.set(entry.getKey(), entry.getValue());
            }
        }
        try (OutputStream core = new FileOutputStream(new File(confDir, "core-site.xml"))) {
            Configuration site = new Configuration(false);
            for (var entry : client) {
                if (!entry.getKey().startsWith("dfs.")) {
                    site.set(entry.getKey(), entry.getValue());
                }
            }
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
        FileSystem fs = FileSystem.newInstance(URI.create(url), kerberos ? conf : client);
        if (kerberos) {
            Path tmp = new Path("/tmp");
            fs.mkdirs(tmp);
            fs.setPermission(tmp, new FsPermission((short) 01777));
        }
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
        if (kdc != null) {
            kdc.stop();
        }
        System.exit(0);
    }

    /**
     * Starts the KDC, creates the service principals ({@code hdfs/localhost}, and
     * {@code HTTP/localhost} for the web UIs) and the user {@code alice}, writes the client's
     * {@code krb5.conf} and {@code alice.keytab} to {@code confDir}, and puts the server side's
     * Kerberos settings into {@code security}.
     */
    private static MiniKdc startKdc(File kdcDir, File confDir, Configuration security)
            throws Exception {
        kdcDir.mkdirs();
        MiniKdc kdc = new MiniKdc(MiniKdc.createConf(), kdcDir);
        kdc.start();
        String realm = kdc.getRealm();
        File serviceKeytab = new File(kdcDir, "hdfs.keytab");
        kdc.createPrincipal(serviceKeytab, "hdfs/localhost", "HTTP/localhost");
        kdc.createPrincipal(new File(confDir, "alice.keytab"), "alice");
        // MIT Kerberos (libgssapi_krb5, which hdfs-native loads) over TCP, no DNS tricks: the
        // service principal's host is exactly "localhost".
        String krb5 = String.join("\n",
                "[libdefaults]",
                "  default_realm = " + realm,
                "  udp_preference_limit = 1",
                "  dns_lookup_kdc = false",
                "  dns_lookup_realm = false",
                "  dns_canonicalize_hostname = false",
                "  rdns = false",
                "[realms]",
                "  " + realm + " = {",
                "    kdc = 127.0.0.1:" + kdc.getPort(),
                "  }",
                "[domain_realm]",
                "  localhost = " + realm,
                "");
        java.nio.file.Files.writeString(new File(confDir, "krb5.conf").toPath(), krb5);

        String service = "hdfs/localhost@" + realm;
        security.set("hadoop.security.authentication", "kerberos");
        security.set("dfs.namenode.kerberos.principal", service);
        security.set("dfs.namenode.keytab.file", serviceKeytab.getPath());
        security.set("dfs.datanode.kerberos.principal", service);
        security.set("dfs.datanode.keytab.file", serviceKeytab.getPath());
        security.set("dfs.web.authentication.kerberos.principal", "HTTP/localhost@" + realm);
        security.set("dfs.web.authentication.kerberos.keytab", serviceKeytab.getPath());
        security.set("dfs.block.access.token.enable", "true");
        // DataNodes on unprivileged ports without SASL data transfer protection: block access
        // tokens still guard every block (a test-only shortcut of Hadoop's own tests).
        security.set("ignore.secure.ports.for.testing", "true");
        return kdc;
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
